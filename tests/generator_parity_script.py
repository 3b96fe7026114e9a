"""Generator parity for one fixture case, runnable under any Keras backend (a subprocess).

Usage: ``KERAS_BACKEND=jax python tests/generator_parity_script.py g_sg3t_32 [ref|fast]``.
Loads ``params.npz`` through ``generator_from_official``, compares ``ws_psi1`` and ``img_psi1``
with the official fixtures and exits non-zero (printing the errors) when a tolerance is missed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from refdata import load_json, load_npz, nchw_to_nhwc  # noqa: E402

from sg3keras.convert.generator import generator_from_official  # noqa: E402


def _forward(g, z, c):
    """``g(z, c)``; under JAX as one ``jax.jit``-compiled ``stateless_call`` (much faster to
    compile than op-by-op eager dispatch)."""
    if keras.backend.backend() != "jax":
        return g(z, c)
    import jax
    tv = [v.value for v in g.trainable_variables]
    ntv = [v.value for v in g.non_trainable_variables]
    fn = jax.jit(lambda tv, ntv, z, c: g.stateless_call(tv, ntv, z, c)[0])
    return fn(tv, ntv, z, c)


def main(case, impl):
    io = load_npz(case, "io")
    g = generator_from_official(load_npz(case, "params"),
                                load_json(case, "config")["constructor_kwargs"], impl=impl)
    c = io["c"] if io["c"].shape[1] else None
    ws = keras.ops.convert_to_numpy(g.mapping(io["z"], c))
    img = keras.ops.convert_to_numpy(_forward(g, io["z"], c))
    err_ws = float(np.abs(ws - io["ws_psi1"]).max())
    err_img = float(np.abs(img - nchw_to_nhwc(io["img_psi1"])).max())
    print(f"backend={keras.backend.backend()} case={case} impl={impl} "
          f"max_abs_ws={err_ws:.3g} max_abs_img={err_img:.3g}")
    return 0 if err_ws <= 1e-5 and err_img <= 2e-5 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "g_sg3t_32",
                  sys.argv[2] if len(sys.argv) > 2 else "fast"))
