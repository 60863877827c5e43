"""``mmspec explore slowpath``: liveness and availability of ``__alloc_pages_slowpath``."""

from __future__ import annotations

import argparse
from typing import Any


def register_explore(sub: Any, cli: Any) -> None:
    p = sub.add_parser("slowpath", help="the allocator slow path on a small zone: it "
                       "terminates (ALLOC-PROP-050) and does not fail requests that may "
                       "wake kswapd while another migratetype has free memory (ALLOC-PROP-051)")
    p.add_argument("--variant", default="v6.18",
                   help="an ALLOC variant: v6.14, defrag_mode-original, defrag_mode, "
                        "defrag_mode+async, v6.15, v6.18 (default), v6.18+atomic-fix")
    p.add_argument("--depth", type=int, default=12,
                   help="environment steps from boot (default 12)")
    p.add_argument("--property", default="all", choices=("all", "liveness", "availability"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_explore_slowpath(args, cli))


def cmd_explore_slowpath(args: argparse.Namespace, cli: Any) -> int:
    from checker.slowpath_explore import explore_slowpath
    from spec.rules import VARIANTS

    if args.variant not in VARIANTS:
        raise cli.UsageError(f"mmspec explore slowpath: unknown variant {args.variant!r} "
                             f"(known: {', '.join(VARIANTS)})")
    if not 1 <= args.depth <= 30:
        raise cli.UsageError("mmspec explore slowpath: --depth must be 1..30")
    with cli.progress(None, "states") as tick:
        res = explore_slowpath(args.variant, max_depth=args.depth, properties=args.property,
                               tick=tick)
    obj = res.to_json()

    def text() -> None:
        print(f"explore slowpath --variant {args.variant}: {res.states} states "
              f"(environment and slow-path steps), depth {res.depth}, "
              f"{res.states_per_s:,.0f} states/s ({res.seconds:.1f} s, "
              f"{'complete' if res.complete else f'bounded at depth {args.depth}'})")
        if not res.violations:
            print("no violation: every slow path within the bound terminates "
                  "(ALLOC-PROP-050)" + ("" if args.property == "liveness" else
                                        "; no avoidable failure (ALLOC-PROP-051)"))
        for v in res.violations:
            print(f"\nVIOLATION {v['property']} (shortest environment prefix):")
            for i, line in enumerate(v["trace"], 1):
                print(f"  {i:3} {line}")
            print(f"  known: {v['known_bug']}" if v["known_bug"] else
                  "  NEW: no historical bug of this variant explains it")
    cli.emit(args, obj, text)
    return cli.EXIT_VIOLATION if res.violations else cli.EXIT_OK


def register_simulate(sub: Any, cli: Any) -> None:
    p = sub.add_parser("thp", help="THP decay over repeated kernel builds with a THP faulter, "
                       "per ALLOC variant (the reliable-huge-page study)")
    p.add_argument("--variant", action="append", dest="variants", metavar="V",
                   help="a variant to run (repeatable; default: all seven)")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", metavar="FILE.png")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_simulate_thp(args, cli))


def cmd_simulate_thp(args: argparse.Namespace, cli: Any) -> int:
    from benchmarks.thp_study import VMSTAT, plot, shape, study
    from spec.rules import VARIANTS

    variants = tuple(args.variants or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise cli.UsageError(f"mmspec simulate thp: unknown variant {unknown[0]!r} "
                             f"(known: {', '.join(VARIANTS)})")
    if not 1 <= args.runs <= 100:
        raise cli.UsageError("mmspec simulate thp: --runs must be 1..100")
    if args.plot and not args.plot.endswith(".png"):
        raise cli.UsageError("mmspec simulate thp: --plot needs a .png file name")
    with cli.progress(args.runs * len(variants), "runs") as tick:
        result = study(variants, args.runs, args.seed, tick=tick)
    result["shape"] = shape(result)
    if args.plot:
        plot(result, args.plot)

    def text() -> None:
        cols = ("thp_fault_alloc", "thp_fault_fallback", "claim", "steal", "pollute",
                "compact_stall", "allocstall")
        for v, data in result["variants"].items():
            print(f"\n{v}")
            print("  run " + " ".join(f"{c:>18}" for c in cols))
            for i, r in enumerate(data["runs"], 1):
                print(f"  {i:3} " + " ".join(f"{r[c]:>18}" for c in cols))
            means = {k: sum(r[k] for r in data["runs"]) / len(data["runs"]) for k in VMSTAT}
            print("  mean " + ", ".join(f"{k} {means[k]:.1f}" for k in VMSTAT))
        for name, c in result["shape"].items():
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {name}: "
                  + ", ".join(f"{k}={v}" for k, v in c.items() if k != "ok"))
        if args.plot:
            print(f"plot written to {args.plot}")
    cli.emit(args, result, text)
    return cli.EXIT_OK


def verify_checks() -> list[tuple[str, Any]]:
    """For ``mmspec verify``: a short exploration of the fixed variant and a lockstep fuzz."""

    def explore() -> dict[str, Any]:
        from checker.slowpath_explore import explore_slowpath
        r = explore_slowpath("v6.18+atomic-fix", max_depth=8)
        return {"ok": not r.violations,
                "detail": f"{r.states} states to depth {r.depth}, {r.states_per_s:,.0f}/s",
                "violations": [{"rule": v["property"], "message": " / ".join(v["trace"][-3:])}
                               for v in r.violations]}

    def lockstep() -> dict[str, Any]:
        from checker.fuzz import run_fuzz
        r = run_fuzz("reference", seconds=10, area="slowpath", steps=30, shrink_seconds=5)
        return {"ok": r.failure is None, "detail": f"{r.examples} examples in {r.seconds:.0f} s",
                "violations": [] if r.failure is None else
                [{"rule": "ALLOC-OP-057", "message": r.failure, "program": r.program}]}

    return [("explore slowpath (v6.18+atomic-fix, depth 8)", explore),
            ("fuzz slowpath --impl reference (10 s)", lockstep)]


def _machine(impl: str) -> Any:
    from checker.slowpath_lockstep import machine_for_impl
    return machine_for_impl(impl)


def _register_fuzz() -> None:
    from checker import fuzz
    fuzz.register_area("slowpath", _machine)


_register_fuzz()
