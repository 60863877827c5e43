"""Tiering simulator throughput: simulated accesses per wall second and per CPU second, per
policy, side by side (issue 6 asks for at least 10 M simulated accesses per second on one core).

Each cell is one ``reference.tier_sim.simulate(policy, workload, SimParams(duration_s=D))``
run (1 M simulated accesses per simulated second, so D M accesses per run); the wall clock
is ``time.perf_counter`` and the CPU clock ``time.process_time`` around the call (so
workload and machine set-up are included). On a shared machine only the CPU figure means
anything; on an idle one the two agree.

    python benchmarks/tier_speed.py                       # gups, 5 s, every default policy
    python benchmarks/tier_speed.py --workload all --duration 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reference.tier_sim import DEFAULT_WORKLOADS, POLICIES, SimParams, simulate  # noqa: E402


def measure(policy: str, workload: str, duration: float) -> tuple[int, float, float]:
    """(accesses, wall seconds, CPU seconds) of one run."""
    w0, c0 = time.perf_counter(), time.process_time()
    r = simulate(policy, workload, SimParams(duration_s=duration))
    return r.accesses, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", action="append",
                    help=f"one of {', '.join(DEFAULT_WORKLOADS)}, or 'all' (default: gups)")
    ap.add_argument("--policy", action="append", help="default: every default-matrix policy")
    ap.add_argument("--duration", type=float, default=5.0, help="simulated seconds per run")
    args = ap.parse_args(argv)
    workloads = args.workload or ["gups"]
    if "all" in workloads:
        workloads = list(DEFAULT_WORKLOADS)
    policies = args.policy or list(POLICIES)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.duration:g} simulated s per run; "
          "M simulated accesses per second (wall / CPU)")
    print(f"{'policy':<14}" + "".join(f"{w:>22}" for w in workloads) + f"{'all':>22}")
    for pol in policies:
        cells, tot_a, tot_w, tot_c = [], 0, 0.0, 0.0
        for w in workloads:
            a, wall, cpu = measure(pol, w, args.duration)
            tot_a, tot_w, tot_c = tot_a + a, tot_w + wall, tot_c + cpu
            cells.append(f"{a / wall / 1e6:10.1f} /{a / cpu / 1e6:6.1f}")
        cells.append(f"{tot_a / tot_w / 1e6:10.1f} /{tot_a / tot_c / 1e6:6.1f}")
        print(f"{pol:<14}" + "".join(f"{c:>22}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
