"""ALLOC bounded obligations: Hyperkernel's matrix of operations × invariants, each
invariant's non-vacuity check, and each invariant's deliberately broken twin.

These are bounded, not inductive, proofs: a breadth-first exploration of every state the
spec's own operations (``spec.page_alloc``) reach from boot in a tiny zone within a fixed
number of steps, with every argument each operation accepts there. A matrix cell
``alloc.matrix.OP.INV`` is ``proved`` when every transition by OP out of an explored state
lands in a state where the invariant INV holds; the manifest pins the number of distinct
states, so a change to the model is a visible diff. Counterexamples are the shortest trace
from boot, printed as a Python program that replays it, with the offending state.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import attrs

import spec.constants as C
import spec.page_alloc as pa
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add
from spec.buddy import (
    account_freepages,
    add_to_free_list,
    find_buddy_pfn,
    free_one_page_locked,
)
from spec.invariants import INVARIANTS, nofragment_guarantee
from spec.rules import rules_of
from spec.watermark import zone_wmarks
from spec.zone import Allocation, SpecError, Work, Zone, ZoneConfig

U, M, R, HA = C.MIGRATE_UNMOVABLE, C.MIGRATE_MOVABLE, C.MIGRATE_RECLAIMABLE, C.MIGRATE_HIGHATOMIC

#: Six pageblocks of two pages (mobility grouping needs MIGRATE_TYPES pageblocks), orders up
#: to 2, one CPU, one HIGHATOMIC block reserved at boot; min_free_kbytes 16 gives watermarks
#: 4/5/6 pages, so the watermark and boost paths are live.
CONFIG = ZoneConfig(nr_pageblocks=6, max_page_order=2, pageblock_order=1, nr_cpus=1, thp=False,
                    min_free_kbytes=16, pageblock_types=(M, M, M, U, HA, M))
#: Steps from boot explored (states at the bound are checked, not expanded).
DEPTH = 4
GFPS = (C.GFP_KERNEL, C.GFP_HIGHUSER_MOVABLE, C.GFP_KERNEL | C.__GFP_RECLAIMABLE, C.GFP_ATOMIC)

Step = tuple[str, tuple[Any, ...]]
Op = Callable[..., tuple[Zone, Any]]


def steps(z: Zone) -> Iterator[Step]:
    """Every operation of ``spec.page_alloc.OPERATIONS`` with every argument it accepts in
    ``z`` (allocations: each GFP class and order; frees: each allocated block; knobs: the
    values the exploration toggles between)."""
    cfg = z.config
    for gfp in GFPS:
        for order in range(cfg.max_page_order + 1):
            yield "alloc_pages", (C.Gfp(gfp), order)
    for a in sorted(z.allocated, key=lambda a: a.pfn):
        yield "free_pages", (a.pfn, a.order)
    if any(p.count for p in z.pcp):
        yield "drain_pages", (0,)
    for pb in range(cfg.nr_pageblocks):
        yield ("unisolate_pageblock" if z.pageblock_isolate[pb] else "isolate_pageblock"), (pb,)
    yield "unreserve_highatomic_pageblock", (M, True)
    yield "set_knob", ("min_free_kbytes", 0 if cfg.min_free_kbytes else 16)
    yield "set_knob", ("defrag_mode", 1 - cfg.defrag_mode)
    yield "get_page_from_freelist", (C.Gfp(C.GFP_ATOMIC), 0,
                                     C.ALLOC_NO_WATERMARKS | C.ALLOC_HIGHATOMIC)


def apply(z: Zone, step: Step, ops: dict[str, Op] | None = None) -> Zone:
    name, args = step
    fn = (ops or {}).get(name) or getattr(pa, name)
    return fn(z, *args)[0]


@attrs.frozen
class Exploration:
    states: dict[Zone, tuple[Zone | None, Step | None, int]]  # state -> (parent, step, depth)
    #: Distinct successors reached by each operation, from states above the depth bound.
    successors: dict[str, set[Zone]]
    transitions: int
    violated: dict[Zone, frozenset[str]]


def explore(config: ZoneConfig = CONFIG, depth: int = DEPTH,
            ops: dict[str, Op] | None = None) -> Exploration:
    """Breadth-first from ``init_zone(config)``: every state within ``depth`` steps, every
    transition out of the states before the last layer; invariants evaluated on all."""
    init = pa.init_zone(config)
    states: dict[Zone, tuple[Zone | None, Step | None, int]] = {init: (None, None, 0)}
    successors: dict[str, set[Zone]] = {name: set() for name in pa.OPERATIONS}
    queue = deque([init])
    transitions = 0
    while queue:
        z = queue.popleft()
        d = states[z][2]
        if d >= depth:
            continue
        for step in steps(z):
            try:
                nz = apply(z, step, ops)
            except SpecError:
                continue
            transitions += 1
            successors[step[0]].add(nz)
            if nz not in states:
                states[nz] = (z, step, d + 1)
                queue.append(nz)
    violated = {z: frozenset(rules_of(inv)[0] for inv in INVARIANTS if inv(z)) for z in states}
    return Exploration(states, successors, transitions, violated)


@functools.lru_cache(maxsize=1)
def exploration() -> Exploration:
    return explore()


def trace(ex: Exploration, z: Zone) -> list[Step]:
    out: list[Step] = []
    while True:
        parent, step, _ = ex.states[z]
        if parent is None or step is None:
            return out[::-1]
        out.append(step)
        z = parent


def program(config: ZoneConfig, steps_: list[Step], final: Zone, twin: str = "") -> str:
    """The counterexample as Python: replay the trace, then the state it reaches."""
    lines = ["from spec.constants import Gfp", "from spec.page_alloc import *",
             "from spec.zone import *"]
    if twin:
        lines.append(f"from proofs.alloc_bounded import {twin}")
    lines.append(f"z = init_zone({config!r})")
    for i, (name, args) in enumerate(steps_):
        fn = twin if twin and i == len(steps_) - 1 else name
        lines.append(f"z, _ = {fn}(z, {', '.join(map(repr, args))})")
    lines.append(f"assert z == {final!r}")
    return "\n".join(lines)


# --- the matrix -------------------------------------------------------------------------------

def _cell(op: str, inv_id: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        ex = exploration()
        bad = [z for z in ex.successors[op] if inv_id in ex.violated[z]]
        detail = (f"{len(ex.successors[op])} distinct successors by {op}, "
                  f"{len(ex.states)} states within {DEPTH} steps")
        if not bad:
            return Outcome(PROVED, detail, states=len(ex.states))
        z = min(bad, key=lambda z: ex.states[z][2])
        return Outcome(COUNTEREXAMPLE, detail, program(CONFIG, trace(ex, z), z),
                       states=len(ex.states))
    run.__doc__ = f"{op} preserves {inv_id} on every state within {DEPTH} steps of boot."
    return run


def _violations(z: Zone) -> frozenset[str]:
    return frozenset(rules_of(inv)[0] for inv in INVARIANTS if inv(z))


# --- non-vacuity: each invariant constrains something in a reachable state ----------------------

def _free_set(z: Zone) -> set[tuple[int, int]]:
    return {(p, o) for p, o, _ in z.free_blocks()}


def _pages_of_kind(z: Zone) -> set[str]:
    kinds = set()
    if z.free_blocks():
        kinds.add("free")
    if z.pcp_blocks():
        kinds.add("pcp")
    if z.allocated:
        kinds.add("allocated")
    return kinds


#: For each invariant, a predicate saying the invariant has something to check in a state
#: (its quantifiers range over a non-empty, interesting set).
WITNESSES: dict[str, tuple[str, Callable[[Zone], bool]]] = {
    "ALLOC-INV-001": ("an allocated block of order >= 1 away from pfn 0",
                      lambda z: any(a.order >= 1 and a.pfn for a in z.allocated)),
    "ALLOC-INV-002": ("free, per-CPU and allocated pages at once",
                      lambda z: _pages_of_kind(z) == {"free", "pcp", "allocated"}),
    "ALLOC-INV-003": ("a free block below pageblock order whose buddy is not free",
                      lambda z: any(o < z.config.pageblock_order
                                    and (find_buddy_pfn(p, o), o) not in _free_set(z)
                                    for p, o, _ in z.free_blocks())),
    "ALLOC-INV-004": ("free pages on the ISOLATE and on the HIGHATOMIC lists",
                      lambda z: {C.MIGRATE_ISOLATE, HA} <= {mt for _, _, mt in z.free_blocks()}),
    "ALLOC-INV-005": ("free blocks of every order",
                      lambda z: all(z.nr_free)),
    "ALLOC-INV-006": ("free highatomic pages, free whole pageblocks and isolated free pages",
                      lambda z: z.nr_free_highatomic > 0 and z.nr_free_pages_blocks > 0
                      and any(mt == C.MIGRATE_ISOLATE for _, _, mt in z.free_blocks())),
    "ALLOC-INV-007": ("pages on a per-CPU list of order >= 1",
                      lambda z: any(o >= 1 for _, _, _, o in z.pcp_blocks())),
    "ALLOC-INV-008": ("a grown alloc_factor or a set PCPF_PREV_FREE_HIGH_ORDER",
                      lambda z: any(p.alloc_factor > 0 for p in z.pcp)
                      or any(p.flags for p in z.pcp)),
    "ALLOC-INV-009": ("a reserved highatomic pageblock",
                      lambda z: z.nr_reserved_highatomic > 0),
    "ALLOC-INV-010": ("a positive minimum watermark with a boost",
                      lambda z: z.watermark[0] > 0 and z.watermark_boost > 0),
    "ALLOC-INV-011": ("pageblocks of three different types",
                      lambda z: len(set(z.pageblock_migratetype)) >= 3),
}


def _nonvacuity(inv_id: str) -> Callable[[], Outcome]:
    what, pred = WITNESSES[inv_id]

    def run() -> Outcome:
        ex = exploration()
        for z in ex.states:  # insertion order is breadth-first: the first is a shortest one
            if not ex.violated[z] and pred(z):
                return Outcome(PROVED, f"witness: {what}, {ex.states[z][2]} steps from boot",
                               program(CONFIG, trace(ex, z), z), states=len(ex.states))
        return Outcome(COUNTEREXAMPLE, f"no reachable state with {what} (vacuous within "
                       f"{DEPTH} steps)", states=len(ex.states))
    run.__doc__ = f"{inv_id} is not vacuous: a reachable state where it holds has {what}."
    return run


# --- broken twins: each breaks one invariant, and the exploration must show it -----------------

def _spec_free_to_buddy(z: Zone, pfn: int, order: int) -> tuple[Work, int]:
    w = Work(z)
    a = w.allocated.get(pfn)
    if a is None or a.order != order:
        raise SpecError("not an allocated block")
    del w.allocated[pfn]
    return w, w.get_pfnblock_migratetype(pfn)


def alloc_pages_misaligned_twin(z: Zone, gfp: int, order: int, cpu: int = 0
                                ) -> tuple[Zone, int | None]:
    """alloc_pages recording the block one page after the page it took (a wrong struct page)."""
    nz, page = pa.alloc_pages(z, gfp, order, cpu)
    if page is None or order == 0:
        return nz, page
    w = Work(nz)
    del w.allocated[page]
    w.allocated[page + 1] = Allocation(page + 1, order, C.gfp_migratetype(gfp))
    return w.freeze(), page + 1


def alloc_pages_leak_twin(z: Zone, gfp: int, order: int, cpu: int = 0
                          ) -> tuple[Zone, int | None]:
    """alloc_pages that hands out the block without recording it: a leak."""
    nz, page = pa.alloc_pages(z, gfp, order, cpu)
    if page is None:
        return nz, page
    w = Work(nz)
    del w.allocated[page]
    return w.freeze(), page


def free_pages_no_merge_twin(z: Zone, pfn: int, order: int, cpu: int = 0) -> tuple[Zone, None]:
    """free_pages straight to the buddy lists without __free_one_page's merge loop."""
    w, mt = _spec_free_to_buddy(z, pfn, order)
    account_freepages(w, 1 << order, mt)
    add_to_free_list(w, pfn, order, mt, tail=False)
    return w.freeze(), None


def isolate_pageblock_no_move_twin(z: Zone, pageblock: int) -> tuple[Zone, bool]:
    """Isolation that sets the bit but leaves the free pages on their lists (the bug fixed
    by 6.10's "move free pages when converting block during isolation")."""
    if z.pageblock_isolate[pageblock]:
        return z, False
    w = Work(z)
    w.pageblock_isolate[pageblock] = True
    return w.freeze(), True


def free_pages_uncounted_twin(z: Zone, pfn: int, order: int, cpu: int = 0
                              ) -> tuple[Zone, None]:
    """free_pages to the buddy whose final list insertion forgets ``nr_free++``."""
    w, mt = _spec_free_to_buddy(z, pfn, order)
    free_one_page_locked(w, pfn, order, mt)
    final = max(o for o in range(w.config.nr_page_orders)
                if (pfn & ~((1 << o) - 1)) in w.buddy
                and w.buddy[pfn & ~((1 << o) - 1)][0] == o)
    w.nr_free[final] -= 1
    return w.freeze(), None


def isolate_pageblock_unaccounted_twin(z: Zone, pageblock: int) -> tuple[Zone, bool]:
    """Isolation that moves the free pages to the ISOLATE lists but keeps counting them in
    NR_FREE_PAGES (the per-type counter drift of the pre-6.10 hygiene)."""
    nz, done = pa.isolate_pageblock(z, pageblock)
    return attrs.evolve(nz, nr_free_pages=z.nr_free_pages), done


def free_pages_pcp_uncounted_twin(z: Zone, pfn: int, order: int, cpu: int = 0
                                  ) -> tuple[Zone, None]:
    """free_pages whose per-CPU path forgets ``pcp->count += 1 << order``."""
    nz, _ = pa.free_pages(z, pfn, order, cpu)
    pcp = nz.pcp[cpu]
    on_list = sum(len(lst) << nz.config.pindex_to_order(i) for i, lst in enumerate(pcp.lists))
    before = sum(len(lst) << z.config.pindex_to_order(i)
                 for i, lst in enumerate(z.pcp[cpu].lists))
    if on_list <= before:
        return nz, None
    return attrs.evolve(nz, pcp=(attrs.evolve(pcp, count=pcp.count - (1 << order)),
                                 *nz.pcp[1:])), None


def free_pages_alloc_factor_twin(z: Zone, pfn: int, order: int, cpu: int = 0
                                 ) -> tuple[Zone, None]:
    """free_frozen_page_commit with ``pcp->alloc_factor--`` for ``>>= 1``: negative at once."""
    nz, _ = pa.free_pages(z, pfn, order, cpu)
    pcp = nz.pcp[cpu]
    return attrs.evolve(nz, pcp=(attrs.evolve(pcp, alloc_factor=z.pcp[cpu].alloc_factor - 1),
                                 *nz.pcp[1:])), None


def unreserve_no_decrement_twin(z: Zone, migratetype: int, force: bool) -> tuple[Zone, bool]:
    """unreserve_highatomic_pageblock that converts the block but keeps the reserve count."""
    nz, done = pa.unreserve_highatomic_pageblock(z, migratetype, force)
    return attrs.evolve(nz, nr_reserved_highatomic=z.nr_reserved_highatomic), done


def set_knob_min_only_twin(z: Zone, name: str, value: int) -> tuple[Zone, None]:
    """A min_free_kbytes handler that recomputes WMARK_MIN only."""
    nz, _ = pa.set_knob(z, name, value)
    if name != "min_free_kbytes":
        return nz, None
    wm = zone_wmarks(nz.config)
    return attrs.evolve(nz, watermark=(wm[0], *z.watermark[1:])), None


def isolate_pageblock_pre_6_17_twin(z: Zone, pageblock: int) -> tuple[Zone, bool]:
    """Isolation written into the 3-bit type, as before 6.17's separate isolate bit."""
    nz, done = pa.isolate_pageblock(z, pageblock)
    if not done:
        return nz, done
    types = list(nz.pageblock_migratetype)
    types[pageblock] = C.MIGRATE_ISOLATE
    return attrs.evolve(nz, pageblock_migratetype=tuple(types)), done


#: twin -> (the operation it replaces, the invariant it must break, the kernel rule it breaks)
TWINS: dict[str, tuple[Op, str, str, str]] = {
    "alloc_pages_misaligned_twin": (alloc_pages_misaligned_twin, "alloc_pages",
                                    "ALLOC-INV-001", "ALLOC-OP-033"),
    "alloc_pages_leak_twin": (alloc_pages_leak_twin, "alloc_pages", "ALLOC-INV-002",
                              "ALLOC-OP-033"),
    "free_pages_no_merge_twin": (free_pages_no_merge_twin, "free_pages", "ALLOC-INV-003",
                                 "ALLOC-OP-002"),
    "isolate_pageblock_no_move_twin": (isolate_pageblock_no_move_twin, "isolate_pageblock",
                                       "ALLOC-INV-004", "ALLOC-OP-036"),
    "free_pages_uncounted_twin": (free_pages_uncounted_twin, "free_pages", "ALLOC-INV-005",
                                  "ALLOC-OP-001"),
    "isolate_pageblock_unaccounted_twin": (isolate_pageblock_unaccounted_twin,
                                           "isolate_pageblock", "ALLOC-INV-006",
                                           "ALLOC-OP-036"),
    "free_pages_pcp_uncounted_twin": (free_pages_pcp_uncounted_twin, "free_pages",
                                      "ALLOC-INV-007", "ALLOC-OP-023"),
    "free_pages_alloc_factor_twin": (free_pages_alloc_factor_twin, "free_pages",
                                     "ALLOC-INV-008", "ALLOC-OP-023"),
    "unreserve_no_decrement_twin": (unreserve_no_decrement_twin,
                                    "unreserve_highatomic_pageblock", "ALLOC-INV-009",
                                    "ALLOC-OP-015"),
    "set_knob_min_only_twin": (set_knob_min_only_twin, "set_knob", "ALLOC-INV-010",
                               "ALLOC-OP-035"),
    "isolate_pageblock_pre_6_17_twin": (isolate_pageblock_pre_6_17_twin, "isolate_pageblock",
                                        "ALLOC-INV-011", "ALLOC-OP-036"),
}


def twin_counterexample(twin: str) -> Outcome:
    """Apply the twin in place of its operation to every explored state, breadth-first; the
    first transition into a state that breaks the twin's invariant is the counterexample."""
    fn, op, inv_id, _ = TWINS[twin]
    ex = exploration()
    checked = 0
    for z in ex.states:
        for step in steps(z):
            if step[0] != op:
                continue
            try:
                nz = fn(z, *step[1])[0]
            except SpecError:
                continue
            checked += 1
            if inv_id in _violations(nz):
                return Outcome(COUNTEREXAMPLE, f"{twin} breaks {inv_id} after "
                               f"{ex.states[z][2] + 1} steps",
                               program(CONFIG, [*trace(ex, z), step], nz, twin),
                               states=len(ex.states))
    return Outcome(PROVED, f"{twin}: {checked} transitions, {inv_id} never broken",
                   states=len(ex.states))


def _twin(twin: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        return twin_counterexample(twin)
    run.__doc__ = TWINS[twin][0].__doc__
    return run


#: The nightly profile's deeper exploration (tag ``slow``: minutes, not seconds).
DEEP_DEPTH = 5


def deep_matrix() -> Outcome:
    """Every operation preserves every invariant on every state within DEEP_DEPTH steps."""
    ex = explore(depth=DEEP_DEPTH)
    bad = [z for z, v in ex.violated.items() if v]
    detail = f"{len(ex.states)} states, {ex.transitions} transitions within {DEEP_DEPTH} steps"
    if not bad:
        return Outcome(PROVED, detail, states=len(ex.states))
    z = min(bad, key=lambda z: ex.states[z][2])
    return Outcome(COUNTEREXAMPLE, f"{detail}: {sorted(ex.violated[z])}",
                   program(CONFIG, trace(ex, z), z), states=len(ex.states))


def _register() -> None:
    inv_ids = [rules_of(inv)[0] for inv in INVARIANTS]
    for op in pa.OPERATIONS:
        op_rules = rules_of(getattr(pa, op)) or rules_of(pa.get_page_from_freelist_work)
        for inv_id in inv_ids:
            name = f"alloc.matrix.{op}.{inv_id}"
            add(name, [inv_id, *op_rules], _cell(op, inv_id), PROVED,
                ["bounded", "matrix"], _cell(op, inv_id).__doc__ or "", exploration)
    for inv_id in inv_ids:
        name = f"alloc.nonvacuity.{inv_id}"
        add(name, [inv_id], _nonvacuity(inv_id), PROVED, ["bounded", "nonvacuity"],
            _nonvacuity(inv_id).__doc__ or "", exploration)
    inv_rules = [rules_of(inv)[0] for inv in INVARIANTS]
    add("alloc.matrix_deep.all", inv_rules, deep_matrix, PROVED, ["bounded", "matrix", "slow"],
        deep_matrix.__doc__ or "")
    for twin, (_, _, inv_id, broken) in TWINS.items():
        name = f"alloc.twin.{inv_id}"
        add(name, [inv_id, broken], _twin(twin), COUNTEREXAMPLE, ["bounded", "twin"],
            TWINS[twin][0].__doc__ or "", exploration)


_register()


# --- ALLOC-PROP-001: ALLOC_NOFRAGMENT never pollutes a pageblock ------------------------------

PROP_DEPTH = 3


def alloc_pages_ignoring_defrag_mode_twin(z: Zone, gfp: int, order: int, cpu: int = 0
                                          ) -> tuple[Zone, int | None]:
    """alloc_pages that does not turn defrag_mode into ALLOC_NOFRAGMENT (the fast path's
    ``alloc_flags_nofragment`` and ``gfp_to_alloc_flags`` as before the series)."""
    off = attrs.evolve(z, config=attrs.evolve(z.config, defrag_mode=0,
                                              zone_is_normal_with_dma32=False))
    nz, page = pa.alloc_pages(off, gfp, order, cpu)
    return attrs.evolve(nz, config=z.config), page


#: Pageblocks of four pages, so that a claim can fail (free + alike below half a block) and
#: the allocator would steal: the situation ALLOC_NOFRAGMENT exists for.
DEFRAG_CONFIG = ZoneConfig(nr_pageblocks=6, max_page_order=2, pageblock_order=2, nr_cpus=1,
                           thp=False, min_free_kbytes=0, watermark_boost_factor=0,
                           defrag_mode=1)


def defrag_scenario(alloc: Op) -> Outcome:
    """Directed: fill the zone with movable pages, free one page in each pageblock, drain,
    then ask for an unmovable page. Every pageblock is MOVABLE with one free page, so only a
    steal can serve the request: under defrag_mode it must fail instead. The guarantee is
    checked after every allocation of the program."""
    z = pa.init_zone(DEFRAG_CONFIG)
    done: list[Step] = []
    pages: list[int] = []

    def do(step: Step) -> Outcome | None:
        nonlocal z
        name, args = step
        before = z
        if name == "alloc_pages":
            z, page = alloc(z, *args)
            if page is not None:
                pages.append(page)
        else:
            z = apply(z, step)
        done.append(step)
        bad = nofragment_guarantee(before, z, args[0]) if name == "alloc_pages" else []
        if bad:
            twin = "" if alloc is pa.alloc_pages else alloc.__name__
            return Outcome(COUNTEREXAMPLE, bad[0], program(DEFRAG_CONFIG, done, z, twin),
                           states=len(done))
        return None

    movable = C.Gfp(C.GFP_HIGHUSER_MOVABLE)
    for _ in range(DEFRAG_CONFIG.spanned_pages):  # drained each time: no page waits on a pcp
        if out := do(("alloc_pages", (movable, 0))):
            return out
        do(("drain_pages", (0,)))
    for pfn in sorted(p for p in pages if p % DEFRAG_CONFIG.pageblock_nr_pages == 3):
        do(("free_pages", (pfn, 0)))
    do(("drain_pages", (0,)))
    if len(z.free_blocks()) != DEFRAG_CONFIG.nr_pageblocks:
        return Outcome(COUNTEREXAMPLE, "the directed program did not leave one free page per "
                       f"pageblock: {z.free_blocks()}", states=len(done))
    before = len(pages)
    if out := do(("alloc_pages", (C.Gfp(C.GFP_KERNEL), 0))):
        return out
    return Outcome(PROVED, f"directed program of {len(done)} steps: the unmovable request "
                   f"{'was served' if len(pages) > before else 'failed'} without polluting "
                   "a block", states=len(done))


def nofragment_check(alloc: Op) -> Outcome:
    """Every allocation step under defrag_mode from every explored state within PROP_DEPTH
    steps, and the directed steal scenario: ``nofragment_guarantee(before, after, gfp)``
    finds nothing."""
    directed = defrag_scenario(alloc)
    if directed.verdict != PROVED:
        return directed
    ex = exploration()
    checked = 0
    for z, (_, _, d) in ex.states.items():
        if d > PROP_DEPTH:
            break  # breadth-first: the rest are deeper
        if not z.config.defrag_mode:
            continue
        for step in steps(z):
            if step[0] != "alloc_pages":
                continue
            nz = alloc(z, *step[1])[0]
            checked += 1
            bad = nofragment_guarantee(z, nz, step[1][0])
            if bad:
                twin = "" if alloc is pa.alloc_pages else alloc.__name__
                return Outcome(COUNTEREXAMPLE, bad[0],
                               program(CONFIG, [*trace(ex, z), step], nz, twin),
                               states=checked)
    return Outcome(PROVED, f"{directed.detail}; {checked} allocations under defrag_mode from "
                   f"states within {PROP_DEPTH} steps", states=checked + (directed.states or 0))


add("alloc.prop.nofragment", ["ALLOC-PROP-001", "ALLOC-OP-033"],
    lambda: nofragment_check(pa.alloc_pages), PROVED, ["bounded", "property"],
    "Under defrag_mode no allocation within the bound leaves a page of the request in a "
    "pageblock of another type (HIGHATOMIC and CMA aside).", exploration)
add("alloc.twin.ALLOC-PROP-001", ["ALLOC-PROP-001", "ALLOC-POL-007"],
    lambda: nofragment_check(alloc_pages_ignoring_defrag_mode_twin), COUNTEREXAMPLE,
    ["bounded", "twin"], alloc_pages_ignoring_defrag_mode_twin.__doc__ or "", exploration)
