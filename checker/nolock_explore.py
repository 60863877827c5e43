"""Exhaustive exploration of the NOLOCK spec (``mmspec explore nolock``).

Breadth-first over :class:`spec.nolock.NolockState` with :func:`checker.explore.explore`:
every step of every context on every CPU, and every interrupt wherever it may arrive. Each
reached state is checked against the state rules (NOLOCK-INV-001..003) and the step-observed
properties (NOLOCK-PROP-001, 002, 005, 006); a state with work left and no move is a
deadlock (NOLOCK-PROP-001). After the search the lock-order graph of all waiting
acquisitions is checked for a cycle with networkx (NOLOCK-PROP-003).

Reduction: none beyond hashing whole states. The two CPUs run different programs, so CPU
symmetry does not apply, and every step touches state another context can observe or is an
interrupt point the properties are about, so no step is merged with the next.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import networkx as nx

from checker.explore import ExploreResult, explore
from spec.nolock import (
    ALL_VARIANTS,
    VARIANTS,
    NolockConfig,
    NolockModel,
    NolockState,
    check_state,
    default_config,
    describe_label,
    describe_state,
    is_final,
    successors,
)

MANIFEST = Path(__file__).with_name("nolock_manifest.json")


def lock_order_cycle(edges: set[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """NOLOCK-PROP-003: a cycle in the lock-order graph, or None."""
    g = nx.DiGraph()
    g.add_edges_from(edges)
    try:
        return [(str(a), str(b)) for a, b, *_ in nx.find_cycle(g)]
    except nx.NetworkXNoCycle:
        return None


@attrs.define
class NolockReport:
    variant: str
    config: NolockConfig
    result: ExploreResult
    lock_edges: list[tuple[str, str]]
    violations: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"variant": self.variant, "states": r.states, "depth": r.depth,
                "states_per_s": round(r.states_per_s), "seconds": round(r.seconds, 3),
                "complete": r.complete, "final_states": r.finals,
                "lock_order": [list(e) for e in sorted(self.lock_edges)],
                "violations": self.violations}


def run(variant: str = "v6.18", bound: int = 1, config: NolockConfig | None = None,
        max_states: int | None = None, stop_at_first: bool = False,
        tick: Callable[[int], None] | None = None) -> NolockReport:
    """Explore ``config`` (default: :func:`default_config` of ``variant``)."""
    if variant not in ALL_VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(ALL_VARIANTS)})")
    cfg = config or default_config(variant, bound)
    m = NolockModel(cfg)

    def succ(s: Any) -> Any:
        return successors(m, s)

    def check(s: Any) -> str | None:
        return check_state(m, s)

    def final(s: Any) -> bool:
        return is_final(s)

    result = explore([m.initial()], succ, check=check, is_final=final,
                     deadlock="NOLOCK-PROP-001", max_states=max_states,
                     stop_at_first=stop_at_first, tick=tick)
    violations = []
    for v in result.violations:
        violations.append({"property": v.property,
                           "trace": [describe_label(m, lab) for lab in v.trace],
                           "state": describe_state(m, v.state)})
    cycle = lock_order_cycle(m.lock_edges)
    if cycle:
        violations.append({"property": "NOLOCK-PROP-003",
                           "trace": [f"{a} -> {b}" for a, b in cycle], "state": ""})
    return NolockReport(variant, cfg, result, sorted(m.lock_edges), violations)


def why(report: NolockReport, state: NolockState) -> str:
    """The message of the state rule a state breaks (for printing)."""
    from spec.nolock import STATE_RULES
    m = NolockModel(report.config)
    for rid, fn in STATE_RULES:
        msg = fn(m, state)
        if msg:
            return f"{rid}: {msg}"
    return state.bad


def manifest_entry(report: NolockReport) -> dict[str, Any]:
    r = report.result
    return {"states": r.states, "depth": r.depth, "final_states": r.finals,
            "verdict": "holds" if report.ok else "violated",
            "properties": sorted({v["property"] for v in report.violations})}


def load_manifest() -> dict[str, Any]:
    return dict(json.loads(MANIFEST.read_text()))


def default_variants() -> tuple[str, ...]:
    return VARIANTS
