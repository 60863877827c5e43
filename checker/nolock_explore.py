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
                "states_per_cpu_s": round(r.states_per_cpu_s),
                "cpu_seconds": round(r.cpu_seconds, 3),
                "complete": r.complete, "final_states": r.finals,
                "lock_order": [list(e) for e in sorted(self.lock_edges)],
                "violations": self.violations}


def run(variant: str = "v6.18", bound: int = 1, cpus: int | None = None,
        config: NolockConfig | None = None,
        max_states: int | None = None, stop_at_first: bool = False,
        tick: Callable[[int], None] | None = None) -> NolockReport:
    """Explore ``config`` (default: :func:`default_config` of ``variant``)."""
    if variant not in ALL_VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(ALL_VARIANTS)})")
    cfg = config or default_config(variant, bound, cpus)
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
                           "trace": annotated_trace(m, v.trace),
                           "state": describe_state(m, v.state)})
    cycle = lock_order_cycle(m.lock_edges)
    if cycle:
        violations.append({"property": "NOLOCK-PROP-003",
                           "trace": [f"{a} -> {b}" for a, b in cycle], "state": ""})
    return NolockReport(variant, cfg, result, sorted(m.lock_edges), violations)


def annotated_trace(m: NolockModel, trace: list[Any]) -> list[str]:
    """The trace's lines, each followed by where that context goes next (the branch a
    trylock or a check took), found by replaying the trace from the initial state."""
    s = m.initial()
    lines = []
    for label in trace:
        cpu, level, opi, what = label
        nxt = next((t for lab, t in successors(m, s) if lab == label), None)
        line = describe_label(m, label)
        if nxt is None or what.endswith("waits") or what.endswith("waits forever"):
            lines.append(line)
            continue
        if opi >= 0:
            frames = [f for f in nxt.stacks[cpu] if f[0] == level]
            if not frames:
                line += "  -> returns"
            elif frames[0][1] != opi:
                line += f"  -> returns; next {frames[0][2]}"
            else:
                line += f"  -> {frames[0][2]}"
        lines.append(line)
        s = nxt
    return lines


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


# --- lockstep: the reference against the spec, with random interleavings --------------------

def deferral_config() -> NolockConfig:
    """Two CPUs whose tasks take zone->lock while NMIs on both free preowned pages with
    free_pages_nolock: the shortest way to several pages on zone->trylock_free_pages."""
    from spec.nolock import ALLOC_KERNEL, FREE, FREE_NOLOCK, NMI, NO_HANDLER
    return NolockConfig(
        variant="v6.18", nr_cpus=2, nr_pages=4, tasks=((ALLOC_KERNEL, FREE),) * 2,
        handlers=((NO_HANDLER, NO_HANDLER, NO_HANDLER, (FREE_NOLOCK,)),) * 2,
        preowned=((0, NMI, 2), (1, NMI, 3)))


def graph_configs() -> tuple[NolockConfig, ...]:
    """The configurations :func:`lockstep_graph` walks by default, a few seconds in all:
    the one-CPU default of each variant (SMP=n, PREEMPT_RT, v6.18), then PREEMPT_RT's
    two-CPU default (14,736 states), the smallest default where a context waits for a lock
    another CPU holds (on one CPU nothing waits; v6.18's two-CPU graph is ten times
    larger)."""
    return (default_config("SMP=n"), default_config("PREEMPT_RT", cpus=1),
            default_config("v6.18", cpus=1), default_config("PREEMPT_RT"))


def _reference(config: NolockConfig) -> Any:
    from reference.nolock import NolockMachine
    return NolockMachine(config)


def lockstep_graph(config: NolockConfig,
                   impl: str | Callable[[NolockConfig], Any] = "reference",
                   max_states: int = 50_000) -> str | None:
    """The implementation against the spec on *every* edge of the spec's reachable state
    graph of ``config`` (a small one): for each reachable state, a fresh implementation is
    driven along the state's shortest trace and then along one move; its abstraction must
    equal the spec's successor, and where the spec's top context waits for a lock the
    implementation's must wait too. ``impl`` is a name as for :func:`machine_for_impl` or
    a class taking the configuration. Returns the first difference, or None.

    The random lockstep (:func:`machine_for_impl`) rarely reaches deep interleavings, e.g.
    an NMI arriving while the task is inside consume_stock: it lets an interrupt in within
    a few moves. This walk reaches them all, at a cost of (edges x depth) implementation
    steps, so it suits configurations of up to some ten thousand states. States where the
    spec itself breaks a rule are not expanded (the explorer reports those)."""
    from collections import deque

    from spec.nolock import STEPS, Wait, observe

    factory = _impl_factory(impl) if isinstance(impl, str) else impl
    m = NolockModel(config)
    init = m.initial()
    parent: dict[NolockState, tuple[NolockState, Any] | None] = {init: None}
    queue = deque([init])
    while queue:
        s = queue.popleft()
        if len(parent) > max_states:
            raise ValueError(f"more than {max_states} states: too big for lockstep_graph")
        if check_state(m, s):
            continue
        trace: list[Any] = []
        at = s
        while (p := parent[at]) is not None:
            at, label = p
            trace.append(label)
        trace.reverse()
        for cpu in range(m.ncpu):
            top = s.stacks[cpu][-1] if s.stacks[cpu] else None
            if top is not None and isinstance(STEPS[top[2]](m, s, cpu, top), Wait):
                impl_ = _replay(factory(config), trace)
                if impl_ is not None and impl_.step(cpu):
                    return (f"cpu{cpu} {top[2]}: the spec waits, the implementation does "
                            f"not (after {describe_trace(m, trace)})")
        for label, t in successors(m, s):
            if t.bad in ("NOLOCK-PROP-001", "NOLOCK-PROP-002"):
                continue
            impl_ = _replay(factory(config), trace)
            if impl_ is None or _replay(impl_, [label]) is None:
                return (f"{describe_label(m, label)}: the implementation waits, the spec does "
                        f"not (after {describe_trace(m, trace)})")
            if observe(impl_.abstract()) != observe(t):
                diffs = [f"{k}: spec {a!r}, implementation {b!r}" for k, a, b in
                         zip(NolockState._fields, observe(t), observe(impl_.abstract()),
                             strict=True) if a != b]
                return (f"{describe_label(m, label)} after {describe_trace(m, trace)}: "
                        + "; ".join(diffs))
            if t not in parent:
                parent[t] = (s, label)
                queue.append(t)
    return None


def describe_trace(m: NolockModel, trace: list[Any]) -> str:
    return f"{len(trace)} moves" + (f", last {describe_label(m, trace[-1])}" if trace else "")


def _replay(impl: Any, trace: list[Any]) -> Any:
    """Drive ``impl`` along spec labels; None if it waits where the spec stepped."""
    for cpu, level, opi, _ in trace:
        if opi < 0:
            impl.interrupt(cpu, level)
        elif not impl.step(cpu):
            return None
    return impl


def _impl_factory(impl: str) -> Callable[[NolockConfig], Any]:
    from checker.fuzz import resolve_named

    def mutants() -> dict[str, Any]:
        from reference.nolock import MUTANTS
        return MUTANTS

    return resolve_named(impl, lambda: _reference, SpecMachine,  # type: ignore[no-any-return]
                         mutants, area="nolock")


def machine_for_impl(impl: str) -> type[Any]:
    """The lockstep state machine for ``reference``, ``spec``, ``mutant:NAME`` or
    ``package.module:Class`` (a class taking a NolockConfig, with ``step(cpu) -> bool``,
    ``interrupt(cpu, level)`` and ``abstract() -> NolockState``)."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

    from spec.nolock import observe

    factory = _impl_factory(impl)

    class NolockLockstep(RuleBasedStateMachine):
        """Spec and implementation driven by the same moves: a step of the innermost context
        of a CPU, or an interrupt arriving; the strategy picks among the moves the spec
        allows. After every move the implementation's abstraction must equal the spec's
        observation, and the spec state must satisfy every state rule."""

        first_failure_at: float | None = None

        def __init__(self) -> None:
            super().__init__()
            self.m: NolockModel | None = None
            self.s: NolockState | None = None
            self.impl: Any = None

        def _fail(self, msg: str) -> None:
            import time
            if type(self).first_failure_at is None:
                type(self).first_failure_at = time.monotonic()
            raise AssertionError(msg)

        @initialize(variant=st.sampled_from(VARIANTS), cpus=st.integers(1, 2),
                    wmark=st.integers(0, 1), batch=st.integers(1, 2), high=st.integers(1, 3),
                    deferrals=st.booleans())
        def setup(self, variant: str, cpus: int, wmark: int, batch: int, high: int,
                  deferrals: bool) -> None:
            if deferrals and variant == "v6.18":
                base = deferral_config()
            else:
                base = default_config(variant, 1, None if variant == "SMP=n" else cpus)
            cfg = attrs.evolve(base, wmark_min=wmark, wmark_low=wmark + 1, pcp_batch=batch,
                               pcp_high=high)
            self.m = NolockModel(cfg)
            self.s = self.m.initial()
            self.impl = factory(cfg)

        @rule(choice=st.integers(0, 63))
        def move(self, choice: int) -> None:
            if self.m is None or self.s is None:
                return
            moves = [(lab, t) for lab, t in successors(self.m, self.s) if not t.bad
                     or t.bad not in ("NOLOCK-PROP-001", "NOLOCK-PROP-002")]
            if not moves:
                return
            (cpu, level, opi, what), t = moves[choice % len(moves)]
            if opi < 0:
                self.impl.interrupt(cpu, level)
            elif not self.impl.step(cpu):
                self._fail(f"cpu{cpu} {what}: the implementation waits, the spec does not")
            self.s = t

        @invariant()
        def same(self) -> None:
            if self.m is None or self.s is None:
                return
            want, got = observe(self.s), observe(self.impl.abstract())
            if want != got:
                diffs = [f"{k}: spec {a!r}, implementation {b!r}"
                         for k, a, b in zip(NolockState._fields, want, got, strict=True)
                         if a != b]
                self._fail("implementation differs from the spec: " + "; ".join(diffs))
            bad = check_state(self.m, self.s)
            if bad:
                self._fail(f"spec state breaks {bad}:\n{describe_state(self.m, self.s)}")

    return NolockLockstep


class SpecMachine:
    """The spec behind the implementation protocol (``--impl spec``: a self-check)."""

    def __init__(self, config: NolockConfig) -> None:
        from spec.nolock import STEPS, Wait
        self.m = NolockModel(config)
        self.s = self.m.initial()
        self._steps, self._wait = STEPS, Wait

    def step(self, cpu: int) -> bool:
        top = self.s.stacks[cpu][-1]
        r = self._steps[top[2]](self.m, self.s, cpu, top)
        if isinstance(r, self._wait):
            return False
        self.s = r
        return True

    def interrupt(self, cpu: int, level: int) -> None:
        for (c, lv, opi, _), t in successors(self.m, self.s):
            if c == cpu and lv == level and opi < 0:
                self.s = t
                return
        raise ValueError(f"no {level} interrupt possible on cpu{cpu}")

    def abstract(self) -> NolockState:
        return self.s


def build_manifest() -> dict[str, Any]:
    """The results manifest: full explorations of the default variants, and for each broken
    variant the properties its first counterexample breaks with the shortest trace length."""
    from spec.nolock import BROKEN_VARIANTS
    out: dict[str, Any] = {"default": {}, "broken": {}}
    for v in VARIANTS:
        out["default"][v] = manifest_entry(run(v))
    for v in BROKEN_VARIANTS:
        rep = run(v, stop_at_first=True)
        out["broken"][v] = {"property": rep.violations[0]["property"],
                            "trace_steps": len(rep.violations[0]["trace"])}
    return out


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--write-manifest"]:
        MANIFEST.write_text(json.dumps(build_manifest(), indent=2, sort_keys=True) + "\n")
        print(f"wrote {MANIFEST}")
    else:
        print("usage: python -m checker.nolock_explore --write-manifest", file=sys.stderr)
        sys.exit(2)
