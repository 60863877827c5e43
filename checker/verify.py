"""``mmspec verify``: the main job, as a library call.

It runs (1) the invariant checker over a seeded workload on the default configuration, on the
spec and on the reference in lockstep, (2) a short lockstep fuzz of the reference against the
spec, and (3) the snapshot checker on this machine's /proc files where they are readable.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import spec.constants as C
from checker.adapter import SpecAdapter, diff_zones
from checker.fuzz import run_fuzz
from spec.invariants import check_invariants
from spec.zone import ZoneConfig

WORKLOAD_GFP = (C.GFP_KERNEL, C.GFP_HIGHUSER_MOVABLE, C.GFP_ATOMIC, C.GFP_NOWAIT,
                C.GFP_KERNEL | C.__GFP_RECLAIMABLE, C.GFP_TRANSHUGE_LIGHT)


def invariant_run(config: ZoneConfig, steps: int = 1500, seed: int = 0,
                  tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """A seeded mixed workload on spec and reference, invariants and lockstep every step."""
    from reference import Zone as ReferenceZone

    rng = random.Random(seed)
    model, impl = SpecAdapter(config), ReferenceZone(config)
    live: list[tuple[int, int]] = []
    violations: list[dict[str, Any]] = []
    allocated = 0
    for step in range(steps):
        r = rng.random()
        cpu = rng.randrange(config.nr_cpus)
        if r < 0.55 or not live:
            gfp = rng.choice(WORKLOAD_GFP)
            order = rng.choice((0, 0, 0, 0, 1, 2, 3, config.pageblock_order))
            a, b = model.alloc_pages(gfp, order, cpu), impl.alloc_pages(gfp, order, cpu)
            if a != b:
                violations.append({"rule": "lockstep", "step": step,
                                   "message": f"alloc_pages returned {b}, spec {a}"})
                break
            if a is not None:
                live.append((a, order))
                allocated += 1
        elif r < 0.95:
            pfn, order = live.pop(rng.randrange(len(live)))
            model.free_pages(pfn, order, cpu)
            impl.free_pages(pfn, order, cpu)
        elif r < 0.98:
            model.drain_pages(cpu)
            impl.drain_pages(cpu)
        else:
            value = rng.randrange(2)
            model.set_knob("defrag_mode", value)
            impl.set_knob("defrag_mode", value)
        want, got = model.abstract(), impl.abstract()
        if want != got:
            violations.append({"rule": "lockstep", "step": step,
                               "message": "; ".join(diff_zones(want, got))})
            break
        found = check_invariants(want)
        violations += [{"rule": rid, "step": step, "message": msg} for rid, msg in found]
        if found:
            break
        if tick:
            tick()
    return {"steps": steps, "allocations": allocated, "violations": violations}


def verify(fuzz_seconds: float = 15.0, steps: int = 1500, seed: int = 0,
           tick: Callable[[], None] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"checks": []}
    t = time.monotonic()
    inv = invariant_run(ZoneConfig(), steps=steps, seed=seed, tick=tick)
    report["checks"].append({"name": "invariants (default configuration, spec and reference)",
                             "ok": not inv["violations"], "seconds": round(time.monotonic() - t, 2),
                             "detail": f"{inv['steps']} steps, {inv['allocations']} allocations",
                             "violations": inv["violations"]})
    t = time.monotonic()
    fz = run_fuzz("reference", seconds=fuzz_seconds, seed=seed)
    report["checks"].append({"name": "lockstep fuzz (reference against spec)",
                             "ok": fz.failure is None, "seconds": round(time.monotonic() - t, 2),
                             "detail": f"{fz.examples} examples",
                             "violations": [] if fz.failure is None else [
                                 {"rule": "lockstep", "message": fz.failure,
                                  "program": fz.program}]})
    if os.access("/proc/pagetypeinfo", os.R_OK):
        from checker.snapshot import check_snapshots, read_live

        t = time.monotonic()
        snap = check_snapshots(read_live())
        report["checks"].append({"name": "live kernel snapshot (/proc)",
                                 "ok": not snap.violations,
                                 "seconds": round(time.monotonic() - t, 2),
                                 "detail": f"{len(snap.checked)} rules checked",
                                 "violations": list(snap.violations)})
    else:
        report["checks"].append({"name": "live kernel snapshot (/proc)", "ok": True,
                                 "skipped": "/proc/pagetypeinfo is not readable here",
                                 "seconds": 0.0, "detail": "skipped", "violations": []})
    from checker.commands import discover

    for plugin in discover():
        for name, run in getattr(plugin, "verify_checks", lambda: [])():
            t = time.monotonic()
            check = {"name": name, "violations": [], "detail": "", **run()}
            check["seconds"] = round(time.monotonic() - t, 2)
            report["checks"].append(check)
    report["ok"] = all(c["ok"] for c in report["checks"])
    return report
