"""Declarative weight conversion: a table of (official-name regex, Keras path, transform) rules.

:func:`apply_table` copies an official ``state_dict`` (name -> numpy array) into a built Keras
model. Keras weights are addressed by their dotted module path relative to the model, e.g.
``synthesis.L3_52_32.affine.weight`` (see :func:`keras_weight_paths`), which mirrors the
official module names. Every official entry must match a rule and land on an existing weight of
the right shape, and every Keras weight must be written exactly once; otherwise one
``ValueError`` lists every problem.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence, Tuple

import numpy as np

__all__ = ["Rule", "apply_table", "keras_weight_paths", "identity", "transpose_fc",
           "conv_oikk_to_kkio", "conv_kkio_to_oikk", "chw_to_hwc", "hwc_to_chw", "official_layout", "flatten_init_kwargs"]

# (regex fully matching an official name, destination template using \1 groups, transform)
Rule = Tuple[str, str, Callable[[np.ndarray], np.ndarray]]


def identity(a):
    return a


def transpose_fc(a):
    """FC weight ``[out, in]`` (PyTorch) -> ``[in, out]`` (Keras)."""
    return np.transpose(a)


def conv_oikk_to_kkio(a):
    """Conv weight ``[O, I, kh, kw]`` (PyTorch) -> ``[kh, kw, I, O]`` (Keras)."""
    return np.transpose(a, (2, 3, 1, 0))


def conv_kkio_to_oikk(a):
    """Conv weight ``[kh, kw, I, O]`` (Keras) -> ``[O, I, kh, kw]`` (PyTorch)."""
    return np.transpose(a, (3, 2, 0, 1))


def chw_to_hwc(a):
    """Constant input ``[C, R, R]`` (PyTorch) -> ``[R, R, C]`` (Keras)."""
    return np.transpose(a, (1, 2, 0))


def hwc_to_chw(a):
    """Constant input ``[R, R, C]`` (Keras) -> ``[C, R, R]`` (PyTorch)."""
    return np.transpose(a, (2, 0, 1))


# The way back from a Keras layout to the official one, per forward transform.
_INVERSE = {identity: identity, transpose_fc: transpose_fc, conv_oikk_to_kkio: conv_kkio_to_oikk,
            chw_to_hwc: hwc_to_chw}


def keras_weight_paths(model) -> dict:
    """Map dotted paths relative to ``model`` (``mapping.fc0.weight``) to its variables."""
    out = {}
    for v in model.weights:
        parts = v.path.split("/")
        if model.name in parts[:-1]:       # Drop the model's own (and any outer) scope.
            parts = parts[parts.index(model.name) + 1:]
        path = ".".join(parts)
        if path in out:
            raise ValueError(f"two weights of {model.name!r} share the path {path!r}")
        out[path] = v
    return out


def _plan(dst_paths: dict, state: dict, rules: Sequence[Rule]):
    compiled = [(re.compile(rx), tpl, fn) for rx, tpl, fn in rules]
    assigned, problems, attempted = {}, [], set()
    for name in sorted(state):
        for rx, tpl, fn in compiled:
            m = rx.fullmatch(name)
            if m:
                dst = m.expand(tpl)
                break
        else:
            problems.append(f"unexpected official entry {name!r} (no rule matches)")
            continue
        if dst not in dst_paths:
            problems.append(f"unexpected official entry {name!r}: destination {dst!r} "
                            "does not exist in the model")
            continue
        if dst in assigned:
            problems.append(f"{dst!r} matched twice ({assigned[dst][0]!r} and {name!r})")
            continue
        attempted.add(dst)
        value = np.asarray(fn(np.asarray(state[name])))
        want = tuple(dst_paths[dst].shape)
        if tuple(value.shape) != want:
            problems.append(f"{name!r} -> {dst!r}: shape {tuple(np.shape(state[name]))} "
                            f"converts to {tuple(value.shape)}, expected {want}")
            continue
        assigned[dst] = (name, value)
    for dst in sorted(set(dst_paths) - set(assigned) - attempted):
        problems.append(f"missing official entry for {dst!r}")
    return assigned, problems


def apply_table(model, state: dict, rules: Iterable[Rule], what: str = "generator"):
    """Copy ``state`` into ``model`` following ``rules``; raise listing all problems at once.

    Args:
        model: a built Keras model/layer whose weights are the destinations.
        state: official ``state_dict`` as ``{name: np.ndarray}``.
        rules: sequence of ``(regex, template, transform)``; the first rule whose regex fully
            matches an official name wins; ``template`` is expanded with the match groups.
        what: word used in the error message (``"generator"``, ``"discriminator"``).
    Returns:
        ``{keras_path: official_name}`` of every assignment.
    """
    dst_paths = keras_weight_paths(model)
    assigned, problems = _plan(dst_paths, state, list(rules))
    if problems:
        raise ValueError(f"cannot load the official {what} state ({len(problems)} problem(s)):\n  "
                         + "\n  ".join(problems))
    for dst, (_, value) in assigned.items():
        var = dst_paths[dst]
        var.assign(value.astype(var.dtype))
    return {dst: name for dst, (name, _) in assigned.items()}


def official_layout(model, state: dict, rules: Iterable[Rule], what: str = "generator"):
    """``{keras_path: (official_name, to_official)}`` for every weight of ``model``.

    ``state`` supplies the official names and shapes (e.g. the state dict the model was loaded
    from); ``to_official`` turns a Keras-layout array (a weight, its gradient or an optimizer
    moment) back into the official layout. Raises like :func:`apply_table` on any mismatch.
    """
    dst_paths = keras_weight_paths(model)
    compiled = list(rules)
    assigned, problems = _plan(dst_paths, state, compiled)
    if problems:
        raise ValueError(f"cannot map the {what} onto the official names ({len(problems)} "
                         "problem(s)):\n  " + "\n  ".join(problems))
    out = {}
    for dst, (name, _) in assigned.items():
        fn = next(fn for rx, _, fn in compiled if re.fullmatch(rx, name))
        out[dst] = (name, _INVERSE[fn])
    return out


def flatten_init_kwargs(init_kwargs, allowed, mapping_fields, what):
    """Official constructor kwargs -> flat config fields.

    ``synthesis_kwargs`` are merged into the top level, ``mapping_kwargs`` entries are renamed
    through ``mapping_fields`` (official name -> config field). Keys not in ``allowed`` /
    ``mapping_fields`` raise one ``ValueError`` naming all of them.
    """
    kw = dict(init_kwargs)
    mapping = dict(kw.pop("mapping_kwargs", None) or {})
    kw.update(kw.pop("synthesis_kwargs", None) or {})
    out = {k: v for k, v in kw.items() if k in allowed}
    unknown = [k for k in kw if k not in allowed]
    for key, value in mapping.items():
        if key in mapping_fields:
            out[mapping_fields[key]] = value
        else:
            unknown.append(f"mapping_kwargs.{key}")
    if unknown:
        raise ValueError(f"{what} init_kwargs: unknown key(s) {sorted(unknown)}; expected "
                         f"{sorted(allowed)} and mapping_kwargs {sorted(mapping_fields)}")
    return out
