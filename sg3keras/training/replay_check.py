"""Checks of a replay (:mod:`sg3keras.training.replay`) against the recorded official run: one
method per section of the case's ``recommended_tolerances``."""

import json
import os

import numpy as np

def _ulp(x):
    return np.spacing(np.abs(np.asarray(x, np.float32))).astype(np.float64)


def _rel_err(ref, val):
    """``max|val - ref| / max|ref|`` (per tensor)."""
    return float(np.max(np.abs(val - ref)) / max(np.max(np.abs(ref)), 1e-30)) \
        if ref.size else 0.0


class _Comparison:
    """One replay output against one recorded case: each ``check_*`` method is one section of
    the case's ``recommended_tolerances`` and appends to ``problems`` / ``measured``."""

    def __init__(self, got, case_dir):
        case_dir = os.fspath(case_dir)
        self.got = got
        self.cfg = json.load(open(os.path.join(case_dir, "config.json")))
        self.exp = dict(np.load(os.path.join(case_dir, "expected.npz")))
        self.problems, self.measured = [], {}

    def missing(self, key):
        if key not in self.got:
            self.problems.append(f"output lacks {key}")
            return True
        return False

    def pair(self, key):
        """``(reference, ours)`` as float64, or None (problem noted) when absent or misshapen."""
        if self.missing(key):
            return None
        ref = self.exp[key].astype(np.float64)
        val = np.asarray(self.got[key]).astype(np.float64)
        if val.shape != ref.shape:
            self.problems.append(f"{key}: shape {val.shape}, expected {ref.shape}")
            return None
        return ref, val

    def pairs(self, keys):
        """``(key, reference, ours)`` for every key that is present and well-shaped."""
        for key in keys:
            p = self.pair(key)
            if p is not None:
                yield (key,) + p

    def expected_keys(self, prefix, contains=""):
        return [k for k in self.exp if k.startswith(prefix) and contains in k]

    def check_close(self, key, want):
        """A recorded scalar, exact up to float64 rounding (rtol 1e-12)."""
        if not self.missing(key) and not np.isclose(float(self.got[key]), want, rtol=1e-12,
                                                    atol=0):
            self.problems.append(f"{key} = {float(self.got[key])!r}, expected {want!r}")

    def check_hparams(self):
        """Hyperparameters after the lazy-regularisation scaling: exact formulas."""
        for phase in self.cfg["phases"]:
            hp = phase["hparams_used"]
            for k, want in (("lr", hp["lr"]), ("beta1", hp["betas"][0]),
                            ("beta2", hp["betas"][1]), ("eps", hp["eps"])):
                self.check_close(f"hparams/{phase['name']}/{k}", want)

    def check_schedules(self):
        """Per-iteration schedules and the phases that ran."""
        got = self.got
        for it in self.cfg["iterations"]:
            i = it["it"]
            key = f"schedule/it{i}/phases"
            if not self.missing(key) and list(got[key]) != it["phases_ran"]:
                self.problems.append(f"{key} = {list(got[key])}, expected {it['phases_ran']}")
            self.check_close(f"schedule/it{i}/ema_beta", it["ema_beta"])
            key = f"schedule/it{i}/blur_sigma"
            want_sigma = [float(v) for vs in it["blur_sigma"].values() for v in vs]
            if not self.missing(key) and want_sigma and not np.allclose(
                    float(got[key]), want_sigma, rtol=1e-12, atol=0):
                self.problems.append(f"{key} = {float(got[key])!r}, expected {want_sigma[0]!r}")
            key = f"schedule/it{i}/cur_nimg"
            if not self.missing(key) and int(got[key]) != it["cur_nimg_after"]:
                self.problems.append(f"{key} = {int(got[key])}, expected {it['cur_nimg_after']}")

    def check_first_gradients(self):
        """First-iteration gradients: per-tensor max|g - g_ref| / max|g_ref| <= 2e-4."""
        worst = {}
        for key in self.expected_keys("first_iter/", "/grad/"):
            phase = key.split("/")[1]
            p = self.pair(key)
            if p is None:
                continue
            err = _rel_err(*p)
            worst[phase] = max(worst.get(phase, 0.0), err)
            if err > 2e-4:
                self.problems.append(f"{key}: relative error {err:.3g} > 2e-4")
        extra = [k for k in self.got
                 if k.startswith("first_iter/") and "/grad/" in k and k not in self.exp]
        self.problems += [f"{k}: a gradient the official step does not have" for k in extra]
        self.measured["first_iter_grad_max_rel_err"] = worst

    def check_first_params(self):
        """First-iteration parameters after each step: 99.5 % within 1e-6 + 1 ulp, none more
        than 2 lr away."""
        fracs, over_lr = {}, {}
        lrs = {p["name"]: p["hparams_used"]["lr"] for p in self.cfg["phases"]}
        for phase in lrs:
            keys = self.expected_keys(f"first_iter/{phase}/after_step/")
            if not keys:
                continue
            n_in = n_all = 0
            worst_abs = 0.0
            for key, ref, val in self.pairs(keys):
                d = np.abs(val - ref)
                n_in += int(np.sum(d <= 1e-6 + _ulp(ref)))
                n_all += d.size
                bad = d > 2 * lrs[phase] + 1e-6 + _ulp(ref)
                if np.any(bad):
                    self.problems.append(f"{key}: {int(bad.sum())} element(s) moved more than "
                                         f"2 lr from the official step (max diff {d.max():.3g})")
                worst_abs = max(worst_abs, float(d.max()))
            fracs[phase] = n_in / max(n_all, 1)
            over_lr[phase] = worst_abs / lrs[phase]
            if fracs[phase] < 0.995:
                self.problems.append(f"first_iter/{phase}/after_step: only {fracs[phase]:.4%} "
                                     "of elements within 1e-6 + 1 ulp (need 99.5%)")
        self.measured["first_iter_params_frac_within_1e-6_plus_ulp"] = fracs
        self.measured["first_iter_params_max_abs_diff_over_lr"] = over_lr

    def check_optimizer_state(self):
        """Optimizer state after the first steps: step counts exact (parameters without a
        gradient are skipped), second moments close."""
        for key in self.expected_keys("first_iter/", "/adam/"):
            p = self.pair(key)
            if p is None:
                continue
            ref, val = p
            if key.endswith("/step"):
                if not np.array_equal(ref, val):
                    self.problems.append(f"{key} = {val}, expected {ref}")
            else:
                err = _rel_err(ref, val)
                if err > 4e-4:      # A squared gradient: twice the gradient tolerance.
                    self.problems.append(f"{key}: relative error {err:.3g} > 4e-4")

    def _sign_mean_ok(self, key, err):
        """A sign may flip for a score within 1e-4 of 0."""
        scores = self.got.get(key.replace("/signs/", "/scores/"))
        n_close = int(np.sum(np.abs(scores) < 1e-4)) if scores is not None else 0
        return err <= 2.0 * n_close / max(np.size(self.got[key]), 1) + 1e-9

    def check_loss_stats(self):
        """Loss statistics: means at iteration 0 within 1e-5 (+1e-5 rel), later within 1e-3;
        per-sample values at iteration 0 within 1e-4."""
        worst0 = worst_any = 0.0
        for it in self.cfg["iterations"]:
            i = it["it"]
            for phase, stats in it["stats_mean"].items():
                for stat, want in stats.items():
                    key = f"stats/it{i}/{phase}/{stat}"
                    if self.missing(key):
                        continue
                    val = float(np.mean(self.got[key]))
                    err = abs(val - want)
                    if "/signs/" in stat:
                        if not self._sign_mean_ok(key, err):
                            self.problems.append(f"{key}: mean {val}, expected {want}")
                        continue
                    tol = 1e-5 + 1e-5 * abs(want) if i == 0 else 1e-3
                    if i == 0:
                        worst0 = max(worst0, err)
                    worst_any = max(worst_any, err)
                    if err > tol:
                        self.problems.append(f"{key}: mean {val:.9g}, expected {want:.9g} "
                                             f"(|diff| {err:.3g} > {tol:.3g})")
                    if i == 0 and key in self.exp:
                        d = np.max(np.abs(self.got[key].astype(np.float64) - self.exp[key]))
                        if d > 1e-4:
                            self.problems.append(f"{key}: per-sample |diff| {d:.3g} > 1e-4")
        self.measured["loss_mean_max_abs_diff_iteration0"] = worst0
        self.measured["loss_mean_max_abs_diff_any_iteration"] = worst_any

    def check_final_state(self):
        """Final state: per tensor relative error <= 2e-3, >= 99 % within 1e-4 max(1, |x|)."""
        for net in ("G", "D", "G_ema"):
            worst_rel, n_in, n_all = 0.0, 0, 0
            for key, ref, val in self.pairs(self.expected_keys(f"final/{net}/")):
                d = np.abs(val - ref)
                rel = _rel_err(ref, val)
                worst_rel = max(worst_rel, rel)
                if rel > 2e-3:
                    self.problems.append(f"{key}: relative error {rel:.3g} > 2e-3")
                n_in += int(np.sum(d <= 1e-4 * np.maximum(1.0, np.abs(ref))))
                n_all += d.size
            frac = n_in / max(n_all, 1)
            self.measured[f"final_{net}"] = {"max_rel_err": worst_rel, "frac_within_1e-4": frac}
            if frac < 0.99:
                self.problems.append(f"final/{net}: only {frac:.4%} of elements within 1e-4 "
                                     "(need 99%)")

    def check_traces(self):
        """Running statistics after every iteration: relative error <= 2e-3."""
        for key in self.expected_keys("trace/"):
            p = self.pair(key)
            if p is None:
                continue
            err = _rel_err(*p)
            if err > 2e-3:
                self.problems.append(f"{key}: relative error {err:.3g} > 2e-3")

    SECTIONS = ("check_hparams", "check_schedules", "check_first_gradients",
                "check_first_params", "check_optimizer_state", "check_loss_stats",
                "check_final_state", "check_traces")


def compare(got, case_dir):
    """Check a :func:`replay` output against the case's ``expected.npz`` and ``config.json``.

    The criteria are the case's ``recommended_tolerances`` (float32 vs the recorded float32 /
    float64 runs of the official code), one :class:`_Comparison` section each. Returns
    ``(problems, measured)``: a list of strings (empty when everything passes) and a dict of
    the worst errors found.
    """
    c = _Comparison(got, case_dir)
    for section in c.SECTIONS:
        getattr(c, section)()
    return c.problems, c.measured
