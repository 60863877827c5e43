"""``mmspec simulate tiering``: promotion policies side by side on the tiered-memory simulator.

Also registers the ``tier`` lockstep area (``mmspec fuzz tier --impl reference|spec|mutant:NAME``)
and a short TIER lockstep fuzz for ``mmspec verify``.
"""

from __future__ import annotations

import argparse
from typing import Any

from checker import fuzz, tiering_fuzz

fuzz.register_area("tier", tiering_fuzz.machine_for_name)

#: Graph500 BFS, pghot v6 (lkml 2603.2/14591): harmonic_mean_TEPS per configuration.
PUBLISHED_GRAPH500 = {"none": 5.07693e8, "numab2": 7.08679e8, "pghot-default": 5.56854e8,
                      "pghot-precise": 7.39417e8}


def register_simulate(sub: Any, cli: Any) -> None:
    p = sub.add_parser("tiering", help="promotion policies x workloads on the tiering simulator")
    p.add_argument("--policy", action="append", metavar="P",
                   help="none, numab2, kpromoted, pghot-default, pghot-precise, chmu "
                        "(repeatable; default these six), pghot-v3-abit")
    p.add_argument("--workload", action="append", metavar="W",
                   help="uniform, zipf, gups, hotset-shift, stairs, graph500, lackey:FILE "
                        "(repeatable; default the first five)")
    p.add_argument("--duration", type=float, default=20.0, help="simulated seconds per run")
    p.add_argument("--accesses-per-s", type=int, default=1_000_000,
                   help="simulated accesses per simulated second")
    p.add_argument("--footprint", type=int, default=1 << 18, help="workload pages (4 KiB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--graph500", action="store_true",
                   help="the pghot Graph500 reproduction: two top-tier nodes, data on CXL")
    p.add_argument("--plot", metavar="FILE.png",
                   help="fast-tier hit ratio over time (hot-set shift workload if run)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_simulate_tiering(args, cli))


def _check(args: argparse.Namespace, cli: Any) -> tuple[list[str], list[str]]:
    from reference.tier_sim import DEFAULT_WORKLOADS, EXTRA_POLICIES, POLICIES
    from reference.tier_workloads import WORKLOADS

    pols = args.policy or list(POLICIES)
    wls = args.workload or list(DEFAULT_WORKLOADS)
    if args.graph500:
        pols = args.policy or ["none", "numab2", "pghot-default", "pghot-precise"]
        wls = ["graph500"]
    for p in pols:
        if p not in POLICIES + EXTRA_POLICIES:
            raise cli.UsageError(f"mmspec simulate tiering: unknown policy {p!r} "
                                 f"(known: {', '.join(POLICIES + EXTRA_POLICIES)})")
    for w in wls:
        if w not in WORKLOADS and not w.startswith("lackey:"):
            raise cli.UsageError(f"mmspec simulate tiering: unknown workload {w!r} "
                                 f"(known: {', '.join(WORKLOADS)}, lackey:FILE)")
    if not 0 < args.duration <= 3600:
        raise cli.UsageError("mmspec simulate tiering: --duration must lie in (0, 3600]")
    if not 1000 <= args.accesses_per_s <= 100_000_000:
        raise cli.UsageError("mmspec simulate tiering: --accesses-per-s must lie in "
                             "1000..100000000")
    if not 1024 <= args.footprint <= 1 << 24:
        raise cli.UsageError("mmspec simulate tiering: --footprint must lie in 1024..16777216")
    if args.plot and not args.plot.endswith(".png"):
        raise cli.UsageError("mmspec simulate tiering: --plot needs a FILE.png")
    return pols, wls


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def cmd_simulate_tiering(args: argparse.Namespace, cli: Any) -> int:
    from reference.tier_sim import SimParams, run_matrix
    from reference.tier_workloads import WorkloadError

    pols, wls = _check(args, cli)
    params = SimParams(duration_s=args.duration, accesses_per_s=args.accesses_per_s,
                       footprint=args.footprint, seed=args.seed)
    if args.graph500:
        # lkml 2603.2/14591: data moved to CXL after generation, no demotion pressure, and
        # pghot's freq_threshold set to 1 to match NUMA balancing.
        params.initial = "slow"
        params.demotion = False
        params.freq_threshold = 1
    runs = len(wls) * (len(pols) + (0 if "none" in pols else 1))
    chunks = int(args.duration * 1000 / params.chunk_ms) // 100 + 1
    try:
        with cli.progress(runs * chunks, "simulating") as tick:
            out = run_matrix(pols, wls, params, tick=tick)
    except WorkloadError as e:
        raise cli.UsageError(f"mmspec simulate tiering: {e}") from None
    results = out["results"]
    obj: dict[str, Any] = {"accesses_per_s": round(out["accesses_per_s"]),
                           "wall_s": round(out["wall_s"], 1),
                           "results": [r.to_json() for r in results]}
    if args.graph500:
        obj["graph500"] = graph500_comparison(results)
    if args.plot:
        try:
            plot(results, args.plot, args.duration)
        except OSError as e:
            raise cli.UsageError(f"mmspec simulate tiering: cannot write {args.plot}: "
                                 f"{e.strerror}") from None
        obj["plot"] = args.plot

    def text() -> None:
        from rich.table import Table
        t = Table("policy", "workload", "fast hit", "mean ns", "x all-fast", "x none",
                  "promo", "demo", "ping-pong", "prec", "recall", "recover s",
                  "samples/faults/PTE", "meta B/GiB", title="tiering simulator")
        for r in results:
            t.add_row(r.policy, r.workload, _fmt(r.fast_tier_hit_ratio),
                      _fmt(r.mean_latency_ns, ".1f"), _fmt(r.slowdown_vs_allfast, ".2f"),
                      _fmt(r.speedup_vs_none, ".2f"), str(r.promotions), str(r.demotions),
                      str(r.ping_pong), _fmt(r.precision, ".2f"), _fmt(r.recall, ".2f"),
                      _fmt(r.recovery_s, ".1f"),
                      f"{r.samples}/{r.hint_faults}/{r.pte_updates}",
                      _fmt(r.metadata_bytes_per_gib, ".0f"))
        con = cli.console()
        if not con.is_terminal:
            from rich.console import Console
            con = Console(highlight=False, width=200)
        con.print(t)
        con.print(f"{out['accesses_per_s'] / 1e6:.1f} M simulated accesses per CPU second over "
                  f"the matrix ({out['wall_s']:.1f} s wall)")
        if args.graph500:
            for row in obj["graph500"]["rows"]:
                con.print(f"{row['policy']:>14}: model gain {row['model_gain']:+.1%}, "
                          f"published TEPS gain {row['published_gain']:+.1%}, "
                          f"{row['remote_promotions']} of {row['promotions']} promotions "
                          "to a node other than the accessing CPU's")
            con.print(obj["graph500"]["summary"])
        if args.plot:
            con.print(f"plot written to {args.plot}")
    cli.emit(args, obj, text)
    return cli.EXIT_OK


def graph500_comparison(results: list[Any]) -> dict[str, Any]:
    """Gain over no promotion, the model's (mean latency) against the published (TEPS)."""
    by = {r.policy: r for r in results}
    base = by.get("none")
    rows = []
    for pol, teps in PUBLISHED_GRAPH500.items():
        if pol not in by or base is None or pol == "none":
            continue
        model = base.mean_latency_ns / by[pol].mean_latency_ns - 1
        rows.append({"policy": pol, "model_gain": round(model, 4),
                     "published_gain": round(teps / PUBLISHED_GRAPH500["none"] - 1, 4),
                     "remote_promotions": by[pol].remote_promotions,
                     "promotions": by[pol].promotions})
    g = {r["policy"]: r for r in rows}
    summary = ""
    if "pghot-default" in g and "pghot-precise" in g:
        keep_model = g["pghot-default"]["model_gain"] / g["pghot-precise"]["model_gain"] \
            if g["pghot-precise"]["model_gain"] else 0.0
        keep_pub = g["pghot-default"]["published_gain"] / g["pghot-precise"]["published_gain"]
        summary = (f"pghot default keeps {keep_model:.0%} of precise mode's gain in the model, "
                   f"{keep_pub:.0%} in the published run")
    return {"rows": rows, "summary": summary}


def plot(results: list[Any], path: str, duration: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wl = "hotset-shift" if any(r.workload == "hotset-shift" for r in results) \
        else results[0].workload
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        if r.workload == wl:
            ax.plot(r.series_t, r.series_hit, label=r.policy, linewidth=1.2)
    if wl == "hotset-shift":
        ax.axvline(duration * 0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.text(duration * 0.5, 0.02, " hot set shifts", color="grey")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("fast-tier hit ratio (100 ms bins)")
    ax.set_ylim(0, 1)
    ax.set_title(f"fast-tier hit ratio over time: {wl}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verify_checks() -> list[tuple[str, Any]]:
    def run() -> dict[str, Any]:
        r = fuzz.run_fuzz("reference", seconds=10, seed=0, area="tier", shrink_seconds=10)
        return {"ok": r.failure is None, "detail": f"{r.examples} examples",
                "violations": [] if r.failure is None else
                [{"rule": "lockstep", "message": r.failure, "program": r.program}]}
    return [("TIER lockstep fuzz (reference against spec)", run)]
