"""``mmspec explore nolock``: every interleaving of a small NMI-safe allocation machine.

Also registers the ``nolock`` lockstep area (``mmspec fuzz nolock``) and adds the default
exploration and a short lockstep fuzz to ``mmspec verify``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from checker import fuzz


def _machine(impl: str) -> Any:
    from checker.nolock_explore import machine_for_impl
    return machine_for_impl(impl)


fuzz.register_area("nolock", _machine)


def register_explore(sub: Any, cli: Any) -> None:
    p = sub.add_parser("nolock", help="alloc_pages_nolock/free_pages_nolock: every "
                       "interleaving of tasks, hardirqs and NMIs on a small machine")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs (default 2; SMP=n variants have 1)")
    p.add_argument("--bound", type=int, default=1,
                   help="times each interrupt handler may run per CPU (default 1)")
    p.add_argument("--variant", default="v6.18",
                   help="v6.18 (default), PREEMPT_RT, SMP=n, or a bug-zoo variant: "
                   "flipped-allow-spinning, nolock-spins, smp-n-pcp, smp-n-nmi, "
                   "deferred-never-drained, second-trylock")
    p.add_argument("--max-states", type=int, default=None,
                   help="stop after this many distinct states (the result is then partial)")
    p.add_argument("--first", action="store_true",
                   help="stop at the first counterexample (still a shortest one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_explore_nolock(args, cli))


def cmd_explore_nolock(args: argparse.Namespace, cli: Any) -> int:
    from checker.nolock_explore import run
    from spec.nolock import ALL_VARIANTS

    if args.variant not in ALL_VARIANTS:
        raise cli.UsageError(f"mmspec explore nolock: unknown variant {args.variant!r} "
                             f"(known: {', '.join(ALL_VARIANTS)})")
    if not 1 <= args.bound <= 15:
        raise cli.UsageError("mmspec explore nolock: --bound must be 1..15")
    if args.max_states is not None and args.max_states <= 0:
        raise cli.UsageError("mmspec explore nolock: --max-states must be positive")
    if args.cpus is not None and not 1 <= args.cpus <= 4:
        raise cli.UsageError("mmspec explore nolock: --cpus must be 1..4")
    try:
        with cli.progress(None, "states") as tick:
            report = run(args.variant, bound=args.bound, cpus=args.cpus,
                         max_states=args.max_states, stop_at_first=args.first, tick=tick)
    except ValueError as e:
        raise cli.UsageError(f"mmspec explore nolock: {e}") from None
    obj = report.to_json()

    def text() -> None:
        r = report.result
        print(f"explore nolock --variant {args.variant}: {r.states} distinct states, depth "
              f"{r.depth}, {r.states_per_s:,.0f} states/s ({r.seconds:.2f} s; "
              f"{r.states_per_cpu_s:,.0f} per CPU second), "
              f"{'complete' if r.complete else 'PARTIAL: --max-states reached'}, "
              f"{r.finals} final states")
        print("lock order: " + (", ".join(f"{a} -> {b}" for a, b in report.lock_edges)
                                or "(no nested waiting acquisitions)"))
        if report.ok:
            print("all properties hold: NOLOCK-PROP-001..005, NOLOCK-INV-001..004")
        for v in report.violations:
            print(f"\nVIOLATION {v['property']} (shortest trace, {len(v['trace'])} steps):")
            for i, line in enumerate(v["trace"], 1):
                print(f"  {i:3} {line}")
            if v["state"]:
                print("  state reached:")
                for line in v["state"].splitlines():
                    print(f"      {line}")
    cli.emit(args, obj, text)
    return cli.EXIT_OK if report.ok else cli.EXIT_VIOLATION


def verify_checks() -> list[tuple[str, Any]]:
    def explore_default() -> dict[str, Any]:
        from checker.nolock_explore import run
        from spec.nolock import VARIANTS

        out = []
        violations = []
        for v in VARIANTS:
            rep = run(v)
            out.append(f"{v}: {rep.result.states} states, depth {rep.result.depth}, "
                       f"{rep.result.states_per_s:,.0f}/s")
            violations += [{"rule": x["property"], "message": f"{v}: " + "; ".join(x["trace"])}
                           for x in rep.violations]
        return {"ok": not violations, "detail": "; ".join(out), "violations": violations}

    def lockstep() -> dict[str, Any]:
        t = time.monotonic()
        res = fuzz.run_fuzz("reference", seconds=4.0, area="nolock")
        return {"ok": res.failure is None,
                "detail": f"{res.examples} examples in {time.monotonic() - t:.1f} s",
                "violations": [] if res.failure is None else [
                    {"rule": "lockstep", "message": res.failure, "program": res.program}]}

    def lockstep_graph() -> dict[str, Any]:
        from checker.nolock_explore import graph_configs
        from checker.nolock_explore import lockstep_graph as walk

        t = time.monotonic()
        diffs = [(cfg.variant, walk(cfg)) for cfg in graph_configs()]
        return {"ok": all(d is None for _, d in diffs),
                "detail": f"every edge of {len(diffs)} small state graphs in "
                          f"{time.monotonic() - t:.1f} s",
                "violations": [{"rule": "lockstep", "message": f"{v}: {d}"}
                               for v, d in diffs if d is not None]}

    return [("nolock exploration (v6.18, PREEMPT_RT, SMP=n)", explore_default),
            ("nolock lockstep fuzz (reference against spec)", lockstep),
            ("nolock lockstep on every edge of small state graphs", lockstep_graph)]
