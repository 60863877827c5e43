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


Check = dict[str, Any]


def _core_checks(fuzz_seconds: float, steps: int, seed: int,
                 tick: Callable[[], None] | None) -> list[tuple[str, str, Callable[[], Check]]]:
    def invariants() -> Check:
        inv = invariant_run(ZoneConfig(), steps=steps, seed=seed, tick=tick)
        return {"ok": not inv["violations"], "violations": inv["violations"],
                "detail": f"{inv['steps']} steps, {inv['allocations']} allocations"}

    def fuzz() -> Check:
        fz = run_fuzz("reference", seconds=fuzz_seconds, seed=seed)
        return {"ok": fz.failure is None, "detail": f"{fz.examples} examples",
                "violations": [] if fz.failure is None else [
                    {"rule": "lockstep", "message": fz.failure, "program": fz.program}]}

    def snapshot() -> Check:
        if not os.access("/proc/pagetypeinfo", os.R_OK):
            return {"ok": True, "skipped": "/proc/pagetypeinfo is not readable here",
                    "detail": "skipped", "violations": []}
        from checker.snapshot import check_snapshots, read_live

        snap = check_snapshots(read_live())
        return {"ok": not snap.violations, "detail": f"{len(snap.checked)} rules checked",
                "violations": list(snap.violations)}

    def rulebook() -> Check:
        from checker.evidence import collect, coverage
        from checker.rulebook import rules

        rows = coverage(rules(), collect())
        unchecked = [r["id"] for r in rows if r["unchecked"]]
        missing = [r for r in rows if r["missing"]]
        return {"ok": not missing, "unchecked": unchecked,
                "detail": f"{len(rows)} rules, {len(unchecked)} unchecked, "
                          f"{len(missing)} without evidence",
                "violations": [{"rule": r["id"], "message": "no "
                                + " and no ".join(r["missing"]) + " evidence"}
                               for r in missing]}

    return [("alloc", "invariants (default configuration, spec and reference)", invariants),
            ("alloc", "lockstep fuzz (reference against spec)", fuzz),
            ("alloc", "live kernel snapshot (/proc)", snapshot),
            ("core", "rule book evidence", rulebook)]


def _plugin_checks() -> list[tuple[str, str, Callable[[], Check]]]:
    from checker.commands import discover

    out = []
    for plugin in discover():
        area = plugin.__name__.rsplit(".", 1)[-1]
        for name, run in getattr(plugin, "verify_checks", lambda: [])():
            out.append((area, name, run))
    return out


def verify(fuzz_seconds: float = 15.0, steps: int = 1500, seed: int = 0,
           tick: Callable[[], None] | None = None, areas: tuple[str, ...] = (),
           on_check: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every check (or those of ``areas``); ``on_check(name)`` is called before each."""
    checks = _core_checks(fuzz_seconds, steps, seed, tick) + _plugin_checks()
    if areas:
        checks = [c for c in checks if c[0] in areas]
    report: dict[str, Any] = {"checks": []}
    for area, name, run in checks:
        if on_check:
            on_check(name)
        t = time.monotonic()
        try:
            result = run()
        except Exception as e:  # a crashing check is a failed check, reported, not a traceback
            result = {"ok": False, "detail": f"crashed: {type(e).__name__}: {e}",
                      "violations": [{"rule": "crash", "message": f"{type(e).__name__}: {e}"}]}
        check = {"area": area, "name": name, "violations": [], "detail": "", **result}
        check["seconds"] = round(time.monotonic() - t, 2)
        report["checks"].append(check)
    report["ok"] = all(c["ok"] for c in report["checks"])
    report["unchecked_rules"] = sum(len(c.get("unchecked", [])) for c in report["checks"])
    report["skipped"] = [{"name": c["name"], "reason": c["skipped"]}
                         for c in report["checks"] if c.get("skipped")]
    return report


def ktap(report: dict[str, Any]) -> str:
    """KTAP version 1: one subtest per area, one test line per check, as kernel CI parses."""
    areas: dict[str, list[dict[str, Any]]] = {}
    for c in report["checks"]:
        areas.setdefault(c["area"], []).append(c)
    lines = ["KTAP version 1", f"1..{len(areas)}"]
    for i, (area, checks) in enumerate(areas.items(), 1):
        lines += ["    KTAP version 1", f"    # Subtest: {area}", f"    1..{len(checks)}"]
        for j, c in enumerate(checks, 1):
            desc = _ktap_name(c["name"])
            for v in c["violations"]:
                lines.append(f"    # {v.get('rule', '?')}: {_one_line(v.get('message', ''))}")
            if c.get("skipped"):
                lines.append(f"    ok {j} {desc} # SKIP {_one_line(c['skipped'])}")
            else:
                lines.append(f"    {'ok' if c['ok'] else 'not ok'} {j} {desc}")
        ok = all(c["ok"] for c in checks)
        lines.append(f"{'ok' if ok else 'not ok'} {i} {area}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def _ktap_name(name: str) -> str:
    # KTAP test names must not contain '#' (it starts a directive).
    return _one_line(name).replace("#", "")
