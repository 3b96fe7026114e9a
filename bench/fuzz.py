"""Fuzz campaign over the readers of outside data: counts per reader, the machine, the seed.

Every reader (official pickle reader and full conversion, ``.keras`` networks, dataset zips and
folders, ``projected_w.npz``, the detector files, a download) gets ``--inputs`` mutated copies
of valid seed files (tests/fuzz_mutate.py), each run in a worker process under a watchdog with
its address space capped (tests/fuzz_harness.py). Printed per reader: inputs, loaded, rejected
with the documented error, crashes, hangs; then each crash / hang with the command replaying it.
Exit status 1 when anything crashed or hung.

Usage: python bench/fuzz.py [--inputs 2000] [--reader NAME ...] [--seed 0] [--keep DIR]
       python bench/fuzz.py --reader NAME --seed S --index I --keep DIR   (one input, kept)
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fuzz_harness  # noqa: E402
from machine import cpu_summary  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=2000, help="inputs per reader")
    ap.add_argument("--reader", action="append", choices=sorted(fuzz_harness.READERS),
                    help="reader(s) to fuzz (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="campaign seed")
    ap.add_argument("--index", type=int, default=None, help="run only this input index")
    ap.add_argument("--headroom-mib", type=int, default=2048,
                    help="address space a reader may use beyond its warmed-up size")
    ap.add_argument("--keep", default=None, help="folder receiving each crashing input")
    ap.add_argument("--json", default=None, help="also write the counts here")
    args = ap.parse_args()
    readers = args.reader or list(fuzz_harness.READERS)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="sg3keras-fuzz-") as work:
        if args.index is not None:
            results = _one(readers, args, work)
        else:
            results = fuzz_harness.campaign(
                readers, dict.fromkeys(readers, args.inputs), args.seed, work,
                headroom=args.headroom_mib << 20, keep_crashes=args.keep,
                log=lambda m: print(m, flush=True))
    _report(results, args, time.time() - t0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "machine": cpu_summary(probe=False),
                       "results": results}, f, indent=1)
    return 1 if any(c["crash"] or c["hang"] for c in results.values()) else 0


def _one(readers, args, work):
    seeds = fuzz_harness.fuzz_seeds.build(work, {fuzz_harness.READERS[r][0] for r in readers})
    results = {}
    for reader in readers:
        path, desc = fuzz_harness.make_input(reader, seeds[fuzz_harness.READERS[reader][0]][0],
                                             args.seed, args.index, work)
        print(f"{reader} #{args.index}: {desc}")
        res = fuzz_harness.replay(reader, path, headroom=args.headroom_mib << 20)
        print(f"  -> {res['outcome']}: {res['detail']}")
        if args.keep:
            fuzz_harness._keep(path, args.keep, reader, args.seed, args.index)
        counts = dict.fromkeys(fuzz_harness.OUTCOMES, 0)
        counts[res["outcome"]] = 1
        counts.update(inputs=1, failures=[])
        results[reader] = counts
    return results


def _report(results, args, seconds):
    print(f"machine: {cpu_summary(probe=False)}")
    print(f"campaign seed {args.seed}; {seconds:.0f} s in all")
    head = f"{'reader':14s} {'inputs':>7s} {'loaded':>7s} {'rejected':>9s} {'crashes':>8s} " \
           f"{'hangs':>6s} {'seconds':>8s}"
    print(head)
    total = dict.fromkeys(("inputs",) + fuzz_harness.OUTCOMES, 0)
    for reader, c in results.items():
        print(f"{reader:14s} {c['inputs']:7d} {c['loaded']:7d} {c['rejected']:9d} "
              f"{c['crash']:8d} {c['hang']:6d} {c.get('seconds', 0):8.0f}")
        for k in total:
            total[k] += c[k]
    print(f"{'total':14s} {total['inputs']:7d} {total['loaded']:7d} {total['rejected']:9d} "
          f"{total['crash']:8d} {total['hang']:6d}")
    for reader, c in results.items():
        for f in c["failures"]:
            print(f"{reader} #{f['index']} {f['outcome']}: {f['detail']}\n    input: {f['input']}"
                  f"\n    replay: python bench/fuzz.py --reader {reader} --seed {args.seed} "
                  f"--index {f['index']}")


if __name__ == "__main__":
    sys.exit(main())
