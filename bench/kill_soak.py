"""Kill soak: SIGKILL a tiny training run N times at seeded random moments, resume it to the end
each time, and compare its final state bit for bit with an uninterrupted run.

Two soaks, each against its own uninterrupted reference run:

* ``single``: one training process (``sg3keras.training.loop.train``, 16-px StyleGAN3-T, ADA on);
* ``two-worker``: a ``MultiWorkerMirroredStrategy`` run of two worker processes on 127.0.0.1;
  each kill SIGKILLs one worker, the survivor is stopped (it ends by itself with
  ``PeerFailureError`` or is killed after ``--peer-grace`` seconds), and all are restarted.

Each kill is aimed at one of these phases, taken in turn in a seeded order (the point, the hit
and the delay within a phase are drawn with the same seed):

* ``timer``: SIGKILL from outside, either a random time into start-up (up to 0.9 x the
  reference run's time to its first tick) or, with 3 ticks or more left, a random time after
  the launch's first tick (up to half the reference's time for the ticks left); reported as
  ``timer/startup`` or ``timer/training`` by whether the launch had printed a tick;
* ``checkpoint``: a fault point (``sg3keras.utils.fault_point``) at one write step of the checkpoint
  ``.npz`` or its ``latest.json`` (temp made, half written, before rename, after rename);
* ``snapshot``: the snapshot ``.keras`` half written / before its rename, or its grid PNG;
* ``stats``: half a ``stats.jsonl`` line appended, or the line appended before the checkpoint;
* ``metric``: half a ``metric-*.jsonl`` record appended (only with ``--metrics``);
* ``ada``: right after a training step that adjusted the ADA probability (the adjustment runs
  inside the compiled step; the kill lands before the next checkpoint).

Fault-point kills for chief-only writes hit worker 0 of the two-worker run; ``timer`` and
``ada`` kills hit a random worker. After every kill the run directory must still name a complete
checkpoint (or none yet: then the run is started afresh, counted as a restart), and every
snapshot in it must be a readable zip. At the end: every array of the final checkpoint (G, D,
G_ema, both optimizers' moments and counters, ADA p and its statistics, RNG states, counters) is
compared exactly with the reference run's, and ``stats.jsonl`` must hold each tick once.

Usage: python bench/kill_soak.py [--kills 20] [--mw-kills N] [--only single|two-worker]
       [--seed 0] [--ticks 24] [--phases timer,checkpoint,...] [--workdir DIR] [--metrics]
Prints the machine, the kills per phase, resumes/restarts, the verdict and the snapshot / grid
files that the uninterrupted run wrote and the killed one lacks; the last line is ``RESULT
{json}``. Exit status 0: every soak ended bit-identical with no file lacking; 2: bit-identical,
but some files lacking; 1: otherwise.
"""

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from multiworker import free_ports, tf_config  # noqa: E402  (the tests' cluster helpers)

BATCH, TICK_STEPS, SNAP = 4, 2, 2
CKPT_POINTS = [f"{p}@{f}" for f in ("ckpt-*.npz", "latest.json")
               for p in ("atomic.begin", "atomic.mid_write", "atomic.before_rename",
                         "atomic.after_rename")]
SNAP_POINTS = ["atomic.mid_write@network-snapshot-*.keras",
               "atomic.before_rename@network-snapshot-*.keras", "atomic.mid_write@fakes*.png"]
STATS_POINTS = ["append.mid@stats.jsonl", "append.after@stats.jsonl"]
METRIC_POINTS = ["append.mid@metric-*.jsonl"]
PHASES = ("timer", "checkpoint", "snapshot", "stats", "ada", "metric")


# ------------------------------------------------------------------------------------------
# The child: one training process (a worker of the two-worker run, or the single process).
# ------------------------------------------------------------------------------------------

def child(spec):
    """Train (or resume) as ``spec`` says, with fault points after each step and after each
    step that adjusted ADA's p (``train.step``, ``ada.update``)."""
    from sg3keras import utils
    from sg3keras.config import TrainOptions
    from sg3keras.training import distribute

    class StepPoints(distribute.StartedCallback):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if utils.FAULTS_ARMED:
                utils.fault_point("train.step")
                if int(self.model.step.numpy()) % self.model.train_config.ada_interval == 0:
                    utils.fault_point("ada.update")

    distribute.StartedCallback = StepPoints      # the loop looks it up when it starts `fit`
    from sg3keras.training.loop import train
    train(TrainOptions(**spec), log=lambda s: print(s, flush=True))


def options(data, outdir, ticks, workers, metrics, resume=None):
    kimg = ticks * TICK_STEPS * BATCH / 1000
    spec = dict(cfg="stylegan3-t", gpus=1, workers=workers, batch=BATCH, gamma=1.0, cbase=256,
                cmax=16, map_depth=2, mbstd_group=2, aug="ada", ada_kimg=1.0,
                kimg=kimg, tick=TICK_STEPS * BATCH / 1000, snap=SNAP, seed=0, fused_ops=False,
                grid_seeds=4, data=data, outdir=outdir,
                metrics=["eqt50k_int"] if metrics else [], metrics_num_samples=4)
    if resume:
        spec["resume"] = resume
    return spec


# ------------------------------------------------------------------------------------------
# The parent: launches, kills, resumes, checks.
# ------------------------------------------------------------------------------------------

class Launch:
    """One launch of the run: 1 or 2 processes under ``timeout -s KILL``, output collected."""

    def __init__(self, spec, workers, faults_for, timeout, tmpdir):
        ports = free_ports(workers) if workers > 1 else None
        self.procs, self.outs = [], []
        self.t0, self.first_tick = time.time(), None
        for i in range(workers):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                       PYTHONPATH=ROOT, TMPDIR=tmpdir)
            env.pop("SG3KERAS_FAULT", None)
            if faults_for.get(i):
                env["SG3KERAS_FAULT"] = faults_for[i]
            if ports:
                env["TF_CONFIG"] = tf_config(ports, i)
                env["SG3KERAS_STARTUP_TIMEOUT"] = str(timeout)
            cmd = ["timeout", "-s", "KILL", str(timeout), sys.executable, __file__,
                   "--child", json.dumps(spec)]
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
            self.procs.append(p)
            self.outs.append([])
            threading.Thread(target=self._read, args=(p, self.outs[-1]), daemon=True).start()

    def _read(self, p, out):
        for line in p.stdout:
            if self.first_tick is None and line.startswith("tick "):
                self.first_tick = time.time() - self.t0
            out.append(line)

    def text(self, i):
        return "".join(self.outs[i])

    def kill(self, i):
        try:
            os.killpg(self.procs[i].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout):
        deadline = time.time() + timeout
        for p in self.procs:
            try:
                p.wait(max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        return all(p.poll() is not None for p in self.procs)

    def stop(self, grace):
        """Wait up to ``grace`` s for every process to end by itself, then kill the rest."""
        self.wait(grace)
        for i in range(len(self.procs)):
            self.kill(i)
        self.wait(30)
        time.sleep(0.2)       # let the readers take the last lines


def run_dir_of(outdir):
    runs = sorted(glob.glob(os.path.join(outdir, "0*-*")))
    return runs[-1] if runs else None


def latest(run_dir):
    path = run_dir and os.path.join(run_dir, "checkpoints", "latest.json")
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def final_state(run_dir):
    import numpy as np
    info = latest(run_dir)
    with np.load(os.path.join(run_dir, "checkpoints", info["file"]), allow_pickle=False) as f:
        return info, {k.split("|", 1)[1]: f[k] for k in f.files if k != "__meta__"}


def check_intact(run_dir):
    """The state a kill leaves must be good: ``latest.json`` (if any) names a checkpoint that
    loads in full, every snapshot is a complete zip; returns a list of problems."""
    problems = []
    info = None
    try:
        info = latest(run_dir)
    except ValueError as e:
        problems.append(f"latest.json unreadable: {e}")
    if info is not None:
        try:
            final_state(run_dir)
        except Exception as e:   # noqa: BLE001 -- any failure is a finding
            problems.append(f"{info['file']}: {type(e).__name__}: {e}")
    for snap in glob.glob(os.path.join(run_dir or "", "network-snapshot-*.keras")):
        try:
            with zipfile.ZipFile(snap) as z:
                bad = z.testzip()
            if bad:
                problems.append(f"{snap}: member {bad} damaged")
        except zipfile.BadZipFile as e:
            problems.append(f"{snap}: {e}")
    return problems


def compare(ref, got):
    (ma, sa), (mb, sb) = ref, got
    problems = []
    if (ma["step"], ma["kimg"]) != (mb["step"], mb["kimg"]):
        problems.append(f"step/kimg {ma['step']}/{ma['kimg']} vs {mb['step']}/{mb['kimg']}")
    if sorted(sa) != sorted(sb):
        problems.append(f"different arrays: {sorted(set(sa) ^ set(sb))[:5]}")
    differ = [k for k in sa if k in sb and (sa[k].shape != sb[k].shape or
                                            sa[k].tobytes() != sb[k].tobytes())]
    if differ:
        problems.append(f"{len(differ)} of {len(sa)} arrays differ, e.g. {differ[:5]}")
    groups = {g: sum(1 for k in sa if k.startswith(g + "/"))
              for g in ("G", "D", "G_ema", "g_opt", "d_opt", "augment_pipe", "trainer")}
    ada_p = [float(sa[k]) for k in sa if k.startswith("augment_pipe/") and k.endswith("/p")]
    return problems, dict(arrays=len(sa), groups=groups, ada_p=ada_p)


def artifacts(run_dir):
    """The snapshot and grid files of a run (what a resumed run must have written too)."""
    names = glob.glob(os.path.join(run_dir, "network-snapshot-*.keras")) + \
        glob.glob(os.path.join(run_dir, "fakes0*.png"))
    return sorted(os.path.basename(n) for n in names)


def stats_ticks(run_dir):
    from sg3keras.runs.stats import read_stats, tick_of
    return [tick_of(r) for r in read_stats(run_dir)]


class Soak:
    """One soak (single process or two workers): a reference run, then the killed run."""

    def __init__(self, name, workers, kills, args, rng):
        self.name, self.workers, self.kills, self.args, self.rng = name, workers, kills, args, rng
        self.base = os.path.join(args.workdir, name)
        self.tmp = os.path.join(self.base, "tmp")     # non-chief workers' scratch folders
        os.makedirs(self.tmp, exist_ok=True)
        self.phases, self.resumes, self.restarts, self.missed = {}, 0, 0, 0
        self.problems, self.log, self.lost = [], [], []
        self.order, self.drawn, self.spontaneous = [], 0, []

    def spec(self, outdir, resume=None):
        return options(self.args.data, outdir, self.args.ticks, self.workers, self.args.metrics,
                       resume)

    def reference(self):
        t0 = time.time()
        launch = Launch(self.spec(os.path.join(self.base, "ref")), self.workers, {},
                        self.args.timeout, self.tmp)
        if not launch.wait(self.args.timeout) or any(p.returncode for p in launch.procs):
            launch.stop(0)
            raise SystemExit(f"{self.name}: the reference run failed (status "
                             f"{[p.returncode for p in launch.procs]}; -9: killed after "
                             f"--timeout {self.args.timeout} s):\n" + launch.text(0)[-3000:])
        self.ref_sec = time.time() - t0
        self.ref_startup = launch.first_tick or self.ref_sec / 2
        return final_state(run_dir_of(os.path.join(self.base, "ref")))

    def draw(self, remaining_ticks):
        """``(phase, worker to kill, fault spec or None, timer delay or None)``."""
        rng = self.rng
        if not self.order:      # each phase in turn, in a seeded order
            self.order = [k for k in PHASES if k in self.args.phases and
                          (k != "metric" or self.args.metrics)]
            rng.shuffle(self.order)
        kind = self.order[self.drawn % len(self.order)]
        self.drawn += 1
        n = rng.randint(1, max(1, min(2, remaining_ticks)))
        victim = 0 if kind in ("checkpoint", "snapshot", "stats", "metric") else \
            rng.randrange(self.workers)
        if kind == "timer":
            if remaining_ticks < 3 or rng.random() < 0.5:
                return kind, victim, None, ("startup", rng.uniform(0, 0.9 * self.ref_startup))
            left = (self.ref_sec - self.ref_startup) * remaining_ticks / self.args.ticks
            return kind, victim, None, ("training", rng.uniform(0, 0.5 * left))
        if kind == "ada":       # one adjustment is every 2 ticks: n = 1 keeps the kills many
            return kind, victim, "ada.update:1", None
        pts = dict(checkpoint=CKPT_POINTS, snapshot=SNAP_POINTS, stats=STATS_POINTS,
                   metric=METRIC_POINTS)[kind]
        pt = rng.choice(pts)
        if kind in ("snapshot", "metric"):
            n = 1
        return kind, victim, f"{pt}:{n}", None

    def launch(self, faults_for):
        run_dir = run_dir_of(os.path.join(self.base, "soak"))
        if run_dir and latest(run_dir) is None:   # killed before its first checkpoint
            shutil.rmtree(run_dir)
            self.restarts += 1
            run_dir = None
        elif run_dir:
            self.resumes += 1
        spec = self.spec(os.path.join(self.base, "soak"), resume=run_dir)
        return Launch(spec, self.workers, faults_for, self.args.timeout, self.tmp)

    def one_kill(self, k):
        run_dir = run_dir_of(os.path.join(self.base, "soak"))
        done = (latest(run_dir) or {}).get("tick", 0)
        kind, victim, fault, delay = self.draw(self.args.ticks - done)
        launch = self.launch({victim: fault} if fault else {})
        if delay is not None:
            end = time.time() + self.args.timeout
            while delay[0] == "training" and launch.first_tick is None and \
                    time.time() < end and launch.procs[victim].poll() is None:
                time.sleep(0.05)
            launch.wait(delay[1])
            alive = launch.procs[victim].poll() is None
            if alive:
                kind = "timer/training" if "tick " in launch.text(0) else "timer/startup"
                launch.kill(victim)
        else:
            try:
                launch.procs[victim].wait(self.args.timeout)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)
            alive = "FAULT " in launch.text(victim)
        launch.stop(self.args.peer_grace)
        what = f"{kind} {fault or f'{delay[1]:.1f} s into {delay[0]}'} worker {victim}"
        if not alive:
            codes = [p.returncode for p in launch.procs]
            if any(codes):      # it failed by itself (e.g. a heartbeat timeout on a busy host)
                last = [launch.text(i).strip().splitlines()[-1:] for i in range(self.workers)]
                self.spontaneous.append(f"status {codes}: {last}")
                print(f"kill {k + 1}: the launch failed by itself first: {last}", flush=True)
                return "retry"
            self.missed += 1
            self.log.append(f"kill {k + 1}: {what}: missed (the launch ended first)")
            print(self.log[-1], flush=True)
            return
        self.phases[kind] = self.phases.get(kind, 0) + 1
        run_dir = run_dir_of(os.path.join(self.base, "soak"))
        bad = check_intact(run_dir)
        self.problems += [f"after kill {k + 1} ({what}): {b}" for b in bad]
        after = (latest(run_dir) or {}).get("tick", 0)
        self.log.append(f"kill {k + 1}: {what}: checkpoint at tick {after}"
                        f"{'; ' + '; '.join(bad) if bad else ''}")
        print(self.log[-1], flush=True)

    def run(self):
        ref = self.reference()
        ref_files = artifacts(run_dir_of(os.path.join(self.base, "ref")))
        print(f"{self.name}: reference run {self.ref_sec:.0f} s", flush=True)
        k = 0
        while k < self.kills:
            run_dir = run_dir_of(os.path.join(self.base, "soak"))
            if run_dir and (latest(run_dir) or {}).get("tick", 0) >= self.args.ticks:
                self.log.append(f"run finished after {k} kills")
                break
            if self.one_kill(k) == "retry" and len(self.spontaneous) <= 3:
                continue        # resumed like after a kill; the same kill is tried again
            k += 1
        launch = self.launch({})
        if not launch.wait(self.args.timeout) or any(p.returncode for p in launch.procs):
            launch.stop(0)
            self.problems.append("the final resume failed: " + launch.text(0)[-2000:])
            return self.result(None)
        run_dir = run_dir_of(os.path.join(self.base, "soak"))
        problems, summary = compare(ref, final_state(run_dir))
        self.problems += problems
        self.lost = sorted(set(ref_files) - set(artifacts(run_dir)))
        ticks = stats_ticks(run_dir)
        if ticks != list(range(1, self.args.ticks + 1)):
            self.problems.append(f"stats.jsonl ticks {ticks}")
        return self.result(summary)

    def result(self, summary):
        made = sum(self.phases.values())
        return dict(soak=self.name, workers=self.workers, kills_requested=self.kills,
                    kills_made=made, missed=self.missed, phases=self.phases,
                    resumes=self.resumes, restarts=self.restarts, compared=summary,
                    identical=not self.problems and summary is not None,
                    problems=self.problems, lost=self.lost, log=self.log,
                    spontaneous=self.spontaneous)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per soak")
    ap.add_argument("--mw-kills", type=int, default=None,
                    help="kills of the two-worker soak (default: --kills)")
    ap.add_argument("--only", choices=["single", "two-worker"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ticks", type=int, default=24, help="run length in ticks of 2 steps")
    ap.add_argument("--metrics", action="store_true",
                    help="run eqt50k_int (4 samples) at each snapshot, to kill its record too")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help="the kill phases to draw from (comma-separated)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per launch")
    ap.add_argument("--peer-grace", type=float, default=60,
                    help="seconds the surviving worker gets to end by itself")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phases or set(args.phases) - set(PHASES):
        ap.error(f"--phases {','.join(args.phases)}: expected some of {', '.join(PHASES)}")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from machine import cpu_summary
    from train_fixtures import write_tiny_dataset
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="kill-soak-")
    os.makedirs(args.workdir, exist_ok=True)
    args.data = write_tiny_dataset(os.path.join(args.workdir, "data.zip"))
    print(f"machine: {cpu_summary(probe=False)}", flush=True)
    rng = random.Random(args.seed)
    soaks = [("single", 1, args.kills),
             ("two-worker", 2, args.kills if args.mw_kills is None else args.mw_kills)]
    results = []
    for name, workers, kills in soaks:
        if args.only in (None, name) and kills >= 0:
            t0 = time.time()
            r = Soak(name, workers, kills, args, rng).run()
            r["seconds"] = round(time.time() - t0)
            results.append(r)
            report(r)
    print("RESULT " + json.dumps(results), flush=True)
    if not all(r["identical"] for r in results):
        return 1
    return 2 if any(r["lost"] for r in results) else 0


def report(r):
    print(f"\n== {r['soak']} ({r['workers']} process{'es' if r['workers'] > 1 else ''}): "
          f"{r['kills_made']} kills made of {r['kills_requested']} "
          f"({r['missed']} drawn kills missed: the launch ended first), {r['resumes']} resumes, "
          f"{r['restarts']} restarts from scratch, {r['seconds']} s")
    for phase, n in sorted(r["phases"].items()):
        print(f"   {phase:<16s} {n}")
    if r["compared"]:
        c = r["compared"]
        print(f"   compared {c['arrays']} arrays {c['groups']}; final ADA p {c['ada_p']}")
    print(f"   verdict: {'BIT-IDENTICAL' if r['identical'] else 'DIFFERENT'} to the "
          f"uninterrupted run")
    for p in r["problems"]:
        print(f"   problem: {p}")
    for p in r["spontaneous"]:
        print(f"   a launch failed by itself (then resumed like after a kill): {p}")
    print(f"   files the uninterrupted run wrote and the killed one lacks: "
          f"{', '.join(r['lost']) or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
