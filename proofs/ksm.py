"""KSM obligations: the counter identities and the other invariants of ``spec.ksm`` on every
program of up to four user steps (madvise, write, fork, munmap, a settling scan) from a small
two-process start, run on the spec's own operations (tag ``bounded``).

The sysfs formulas themselves (``spec.ksm.counters``) use Python's ``max`` and cannot run on
Z3 terms without a change to ``spec/ksm.py``; they are checked here on every reached state
instead. States are counted by :func:`observation`: the sysfs counters, every process's
``ksm_stat``, what each process reads, its madvise flags and its sharing pattern.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs

from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add
from spec import ksm

#: max_page_sharing 2 (the smallest the knob accepts) so that two sharers of one content make
#: a stable node chain within three steps.
KNOBS = {"max_page_sharing": 2}
START = (("A", ("x", "x", "y")), ("B", ("x", "x", "y")))
DEPTH = 4

Step = tuple[str, tuple[Any, ...]]


def start() -> tuple[ksm.KsmState, list[Step]]:
    s = ksm.new_state(dict(KNOBS))
    steps: list[Step] = []
    for name, contents in START:
        s, _ = ksm.create_process(s, name, contents)
        steps.append(("create_process", (name, contents)))
    return s, steps


def moves(s: ksm.KsmState) -> list[Step]:
    out: list[Step] = [("scan", ())]
    live = [n for n, mm in s.mms.items() if not mm.exited]
    for name in live:
        n = len(s.mms[name].ptes)
        out.append(("madvise", (name, 0, n, "mergeable")))
        out.append(("madvise", (name, 0, n, "unmergeable")))
        out.append(("write", (name, 0, "z")))
        out.append(("munmap", (name, n - 1, 1)))
    if "C" not in s.mms:
        out.append(("fork", ("A", "C")))
    return out


def observation(s: ksm.KsmState) -> str:
    """What distinguishes two states here: the sysfs counters and ksm_stat lines, and per
    process what it reads, its madvise flags, and which of its pages share one physical page
    (page ids renamed in order of first use), KSM or not."""
    names: dict[int, int] = {}
    procs = []
    for n, mm in sorted(s.mms.items()):
        pages = []
        for p in mm.ptes:
            if p is None or p not in s.pages:
                pages.append(repr(p) if p is None or p < 0 else "?")
                continue
            names.setdefault(p, len(names))
            pages.append(f"{names[p]}{'k' if s.pages[p].ksm else ''}")
        procs.append((n, [ksm._read(s, p) for p in mm.ptes], pages, mm.mergeable,
                      mm.registered, mm.exited))
    return repr((ksm.observe(s), procs, s.mm_list))


@attrs.frozen
class KsmExploration:
    #: every reached state with the shortest program that reached it
    reached: list[tuple[ksm.KsmState, list[Step]]]
    observations: int


@functools.lru_cache(maxsize=1)
def exploration() -> KsmExploration:
    s0, prog0 = start()
    frontier = [(s0, prog0)]
    reached = [(s0, prog0)]
    seen = {observation(s0)}
    for _ in range(DEPTH):
        nxt = []
        for s, prog in frontier:
            for name, args in moves(s):
                try:
                    s2, _ = getattr(ksm, name)(s, *args)
                except ksm.KsmError:
                    continue
                p2 = [*prog, (name, args)]
                reached.append((s2, p2))
                obs = observation(s2)
                if obs not in seen:
                    seen.add(obs)
                    nxt.append((s2, p2))
        frontier = nxt
    return KsmExploration(reached, len(seen))


def program(prog: list[Step], twin: str = "") -> str:
    lines = ["from spec import ksm", f"s = ksm.new_state({KNOBS!r})"]
    if twin:
        lines.insert(1, f"from proofs.ksm import {twin}")
    for i, (name, args) in enumerate(prog):
        fn = twin if twin and i == len(prog) - 1 else f"ksm.{name}"
        lines.append(f"s, _ = {fn}(s, {', '.join(map(repr, args))})")
    return "\n".join(lines)


def _holds(check: Callable[[ksm.KsmState], list[str]], rule_id: str) -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        bad = check(s)
        if bad:
            return Outcome(COUNTEREXAMPLE, f"{rule_id}: {bad[0]}", program(prog),
                           states=ex.observations)
    return Outcome(PROVED, f"{len(ex.reached)} programs of up to {DEPTH} steps, "
                   f"{ex.observations} distinct observations", states=ex.observations)


def write_uncounted_twin(s: ksm.KsmState, name: str, page: int,
                         content: str) -> tuple[ksm.KsmState, None]:
    """A write that breaks COW on a KSM page without dropping its rmap_item from the stable
    node (remove_rmap_item_from_tree skipped): pages_sharing stays one too high."""
    s2, _ = ksm.write(s, name, page, content)
    if s2.pages_sharing and s.pages_sharing == s2.pages_sharing:
        s2.pages_sharing += 1
    return s2, None


def _twin() -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        for name, args in moves(s):
            if name != "write":
                continue
            try:
                s2, _ = write_uncounted_twin(s, *args)
            except ksm.KsmError:
                continue
            bad = ksm.check_counters(s2)
            if bad:
                return Outcome(COUNTEREXAMPLE, f"KSM-INV-003: {bad[0]}",
                               program([*prog, (name, args)], "write_uncounted_twin"),
                               states=ex.observations)
    return Outcome(PROVED, "the twin never broke the counters", states=ex.observations)


def _nonvacuous() -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        if s.pages_sharing > 0 and s.pages_shared > 0 and s.stable_node_chains > 0 \
                and not ksm.check_invariants(s):
            return Outcome(PROVED, "a reachable state shares pages through a chain",
                           program(prog), states=ex.observations)
    return Outcome(COUNTEREXAMPLE, "no state with pages_sharing and a stable node chain",
                   states=ex.observations)


add("ksm.bounded.counter_identities", ["KSM-INV-003", "KSM-POL-002"],
    lambda: _holds(ksm.check_counters, "KSM-INV-003"), PROVED, ["bounded", "ksm"],
    "The counter identities hold after every program of up to four steps.", exploration)
add("ksm.bounded.isolation", ["KSM-INV-001"],
    lambda: _holds(ksm.check_isolation, "KSM-INV-001"), PROVED, ["bounded", "ksm"],
    "Every mapping reads what its own writes put there, after every program.", exploration)
add("ksm.bounded.stable_nodes", ["KSM-INV-002"],
    lambda: _holds(ksm.check_stable_nodes, "KSM-INV-002"), PROVED, ["bounded", "ksm"],
    "Every KSM page is mapped and no dup exceeds max_page_sharing, after every program.",
    exploration)
add("ksm.bounded.nonvacuity", ["KSM-INV-003", "KSM-INV-002"], _nonvacuous, PROVED,
    ["bounded", "ksm", "nonvacuity"],
    "Non-vacuity: some program shares pages through a stable node chain.", exploration)
add("ksm.twin.write_uncounted", ["KSM-INV-003", "KSM-OP-012"], _twin, COUNTEREXAMPLE,
    ["bounded", "ksm", "twin"], write_uncounted_twin.__doc__ or "", exploration)
