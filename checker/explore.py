"""A generic breadth-first explorer over hashable states, with shortest counterexamples.

Any model can use it: give the initial states, a successor function and a state check.

``explore(initial, successors, check=None, is_final=None, deadlock=None, ...)``

* ``successors(state) -> iterable of (label, next_state)``: labels are what a trace prints
  (any value; keep them cheap to build, e.g. tuples of ints and interned strings).
* ``check(state) -> property or None``: a state violating a property names it (e.g. a rule
  ID). A violating state is recorded with its shortest trace and not expanded further.
* ``is_final(state) -> bool`` and ``deadlock``: a state with no successors that is not final
  is a deadlock, reported under the property ``deadlock``.
* ``max_states``/``max_depth`` bound the search (``complete`` is False when a bound cut it);
  ``stop_at_first`` ends the search at the first violation; ``tick(n)`` reports progress.

Breadth-first order makes every trace a shortest one: each state's parent is recorded when it
is first seen, at its smallest depth. The result counts distinct states, the depth reached,
and distinct states per second of wall-clock time and per second of this process's CPU time
(including checks and hashing; on a shared machine the second is the per-core figure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import attrs

State = TypeVar("State", bound=Hashable)
Label = Any


@attrs.define
class Violation(Generic[State]):
    property: str
    state: State
    trace: list[Label]


@attrs.define
class ExploreResult:
    states: int
    depth: int
    seconds: float
    complete: bool
    violations: list[Violation[Any]]
    finals: int = 0
    #: processor time of this process: on a shared machine, the per-core figure.
    cpu_seconds: float = 0.0

    @property
    def states_per_s(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)

    @property
    def states_per_cpu_s(self) -> float:
        return self.states / self.cpu_seconds if self.cpu_seconds > 0 else float(self.states)


def explore(initial: Iterable[State],
            successors: Callable[[State], Iterable[tuple[Label, State]]],
            check: Callable[[State], str | None] | None = None,
            is_final: Callable[[State], bool] | None = None,
            deadlock: str | None = None,
            max_states: int | None = None, max_depth: int | None = None,
            stop_at_first: bool = False,
            tick: Callable[[int], None] | None = None) -> ExploreResult:
    """Explore every state reachable from ``initial``; see the module docstring."""
    start = (time.perf_counter(), time.process_time())
    parent: dict[State, tuple[State, Label] | None] = {}
    violations: list[Violation[State]] = []
    seen_props: set[str] = set()
    frontier: list[State] = []
    for s in initial:
        if s not in parent:
            parent[s] = None
            frontier.append(s)
    depth = 0
    finals = 0
    complete = True
    ticked = 0

    def record(prop: str, s: State) -> None:
        if prop not in seen_props:
            seen_props.add(prop)
            violations.append(Violation[State](prop, s, trace_to(parent, s)))

    if check:
        bad_initial = [(s, check(s)) for s in frontier]
        for s, bad in bad_initial:
            if bad:
                record(bad, s)
        frontier = [s for s, bad in bad_initial if not bad]
    while frontier:
        if max_depth is not None and depth >= max_depth:
            complete = False
            break
        nxt: list[State] = []
        append = nxt.append
        for s in frontier:
            any_succ = False
            for label, t in successors(s):
                any_succ = True
                if t in parent:
                    continue
                parent[t] = (s, label)
                bad = check(t) if check else None
                if bad:
                    record(bad, t)
                    if stop_at_first:
                        return _done(parent, depth + 1, start, False, violations, finals)
                    continue
                append(t)
            if not any_succ:
                if is_final is None or is_final(s):
                    finals += 1
                elif deadlock:
                    record(deadlock, s)
                    if stop_at_first:
                        return _done(parent, depth, start, False, violations, finals)
            if max_states is not None and len(parent) >= max_states:
                complete = False
                nxt = []
                break
        if tick and len(parent) - ticked >= 10000:
            tick(len(parent) - ticked)
            ticked = len(parent)
        if nxt:
            depth += 1
        frontier = nxt
    return _done(parent, depth, start, complete, violations, finals)


def _done(parent: dict[Any, Any], depth: int, start: tuple[float, float], complete: bool,
          violations: list[Violation[Any]], finals: int) -> ExploreResult:
    return ExploreResult(len(parent), depth, time.perf_counter() - start[0], complete,
                         violations, finals, time.process_time() - start[1])


def trace_to(parent: dict[State, tuple[State, Label] | None], s: State) -> list[Label]:
    """The labels on the recorded (shortest) path from an initial state to ``s``."""
    out: list[Label] = []
    link = parent.get(s)
    while link is not None:
        prev, label = link
        out.append(label)
        link = parent.get(prev)
    out.reverse()
    return out
