"""TIER obligations: Z3 over the spec's own pghot and NUMA-balancing arithmetic
(``spec.pghot``, ``spec.numab``), whose helpers in ``spec.tier_common`` already run on ints and
bit-vectors with C's unsigned meaning. HZ = 1000 throughout (jiffies are milliseconds).

The pghot default record keeps time in 5 bits of 128-jiffy buckets: it wraps every 4096
jiffies. The edges below state what a reader would expect of a "frequency window" and report
where the record cannot deliver it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import z3

import spec.tiering as T
from checker import tier_twins
from checker.explore import ExploreResult, explore
from checker.spec_twins import Twin, installed
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add, all_of, check_claim, obligation
from spec import pghot
from spec.kpromoted import kpromoted_new_window
from spec.numab import adjust_threshold, hint_fault_latency, rate_limit_slot
from spec.pghot import DEFAULT, PRECISE, Layout, pghot_access_latency, pghot_update_record
from spec.tier_common import CHMU_DEVICE, NUMA_NO_NODE, PGHOT_HINT_FAULT, ite, ult
from spec.tier_state import (
    DEFAULT_WINDOW_MS,
    NodeConfig,
    TierConfig,
    TierError,
    TierState,
    initial_state,
)

FREQ_THRESHOLD = 2


def _freq(layout: Layout, word: Any) -> Any:
    return z3.LShR(word, layout.freq_shift) & layout.freq_max


def _two_accesses(layout: Layout) -> tuple[list[Any], Any, Any]:
    """A fresh record updated at ``t0`` and again at ``t1``: (variables, word after t1, lag)."""
    t0, t1, window = z3.BitVecs("t0 t1 window_ms", 64)
    w0, _ = pghot_update_record(layout, z3.BitVecVal(0, 64), 0, t0, window, FREQ_THRESHOLD)
    w1, _ = pghot_update_record(layout, w0, 0, t1, window, FREQ_THRESHOLD)
    return [t0, t1, window], w1, t1 - t0


def _render_accesses(layout: Layout) -> Any:
    name = "DEFAULT" if layout is DEFAULT else "PRECISE"

    def render(v: dict[str, int | bool]) -> str:
        t0, t1, window = int(v["t0"]), int(v["t1"]), int(v["window_ms"])
        w0, _ = pghot_update_record(layout, 0, 0, t0, window, FREQ_THRESHOLD)
        w1, ready = pghot_update_record(layout, w0, 0, t1, window, FREQ_THRESHOLD)
        freq = (w1 >> layout.freq_shift) & layout.freq_max
        return (f"w0, _ = pghot_update_record({name}, 0, 0, {t0}, {window}, {FREQ_THRESHOLD})\n"
                f"w1, ready = pghot_update_record({name}, w0, 0, {t1}, {window}, "
                f"{FREQ_THRESHOLD})\n"
                f"# {t1 - t0} jiffies apart, window {window}: frequency {freq}, ready {ready}")
    return render


@obligation("tier.pghot.latency_bounds", ["TIER-POL-011"], tags=["z3", "pghot"])
def latency_bounds() -> Outcome:
    """For every stored time and every jiffies value: the default record's latency is at most
    31 buckets (3968 jiffies) and a multiple of 128; the precise record's at most 0x3fff."""
    old, now = z3.BitVecs("old_time now", 64)
    d = pghot_access_latency(DEFAULT, old & 31, now)
    p = pghot_access_latency(PRECISE, old & 0x3FFF, now)
    return all_of([
        ("default", check_claim([old, now], [], z3.And(z3.ULE(d, 3968), d & 127 == 0))),
        ("precise", check_claim([old, now], [], z3.ULE(p, 0x3FFF)))])


@obligation("tier.pghot.update_saturates", ["TIER-OP-010", "TIER-POL-010"],
            tags=["z3", "pghot"])
def update_saturates() -> Outcome:
    """For every record word, node, time and window: an update keeps the word in its width,
    leaves a frequency in 1..max (saturating, never wrapping to 0), never clears the ready
    bit, and sets it whenever the frequency reaches the threshold."""
    def case(layout: Layout) -> Outcome:
        word, nid, now, window = z3.BitVecs("word nid now window_ms", 64)
        word_in = word & ((1 << layout.bits) - 1)
        w, _ = pghot_update_record(layout, word_in, nid & 0x3FF, now, window, FREQ_THRESHOLD)
        f = _freq(layout, w)
        ready = 1 << layout.ready_bit
        claim = z3.And(z3.ULT(w, 1 << layout.bits), z3.UGE(f, 1), z3.ULE(f, layout.freq_max),
                       z3.Implies(word_in & ready != 0, w & ready != 0),
                       z3.Implies(z3.UGE(f, FREQ_THRESHOLD), w & ready != 0))
        return check_claim([word, nid, now, window], [], claim)
    return all_of([("default", case(DEFAULT)), ("precise", case(PRECISE))])


@obligation("tier.pghot.new_window_before_wrap", ["TIER-OP-010", "TIER-POL-011"],
            tags=["z3", "pghot"])
def new_window_before_wrap() -> Outcome:
    """Default record: a second access at least ``window + 128`` jiffies after the first (a
    bucket of slack) and at most 3968 jiffies after it starts a new window (frequency 1),
    for every window below 3840 ms."""
    vs, w1, lag = _two_accesses(DEFAULT)
    t0, t1, window = vs
    pre = [z3.ULT(window, 3840), z3.ULE(t0, t1), z3.UGE(lag, window + 128), z3.ULE(lag, 3968),
           z3.ULT(t1, 1 << 62)]
    return check_claim(vs, pre, _freq(DEFAULT, w1) == 1, _render_accesses(DEFAULT))


@obligation("tier.pghot.fresh_after_wrap", ["TIER-OP-010", "TIER-POL-011"],
            expected=COUNTEREXAMPLE, tags=["z3", "pghot", "edge"])
def fresh_after_wrap() -> Outcome:
    """Edge, expected to fail: "an access more than ``window`` after the previous one starts a
    new window". In the default (u8) record a page accessed just over one wrap (4096
    jiffies) ago falls in the same 128-jiffy bucket and looks as fresh as one accessed now:
    the frequency grows to 2 and the page becomes ready for promotion after two accesses
    4 s apart, with a 1 s window."""
    vs, w1, lag = _two_accesses(DEFAULT)
    t0, t1, window = vs
    pre = [window == 1000, z3.ULE(t0, t1), z3.UGT(lag, window), z3.ULT(t1, 1 << 62),
           z3.ULE(lag, 4096 + 1000)]
    return check_claim(vs, pre, _freq(DEFAULT, w1) == 1, _render_accesses(DEFAULT))


@obligation("tier.pghot.precise_fresh_after_wrap", ["TIER-OP-010", "TIER-POL-011"],
            expected=COUNTEREXAMPLE, tags=["z3", "pghot", "edge"])
def precise_fresh_after_wrap() -> Outcome:
    """Edge, expected to fail: the precise (u32) record keeps jiffies mod 2^14, so the same
    aliasing happens one wrap (16.384 s at HZ=1000) later, with its default 5 s window."""
    vs, w1, lag = _two_accesses(PRECISE)
    t0, t1, window = vs
    pre = [window == DEFAULT_WINDOW_MS["pghot-v6-precise"], z3.ULE(t0, t1),
           z3.UGT(lag, window), z3.ULT(t1, 1 << 62), z3.ULE(lag, (1 << 14) + 5000)]
    return check_claim(vs, pre, _freq(PRECISE, w1) == 1, _render_accesses(PRECISE))


@obligation("tier.numab.rate_limit_slot", ["TIER-POL-021"], tags=["z3", "numab"])
def rate_limit() -> Outcome:
    """A candidate passes only while fewer than ``rate_limit`` pages were counted since the
    slot's base, for every clock (u32 ms, wrapping), counter and rate limit; and a slot
    older than 1000 ms is always replaced by one starting now."""
    now, start, cand, base, limit = z3.BitVecs("now_ms start nr_cand slot_base rate_limit", 64)
    now32, start32 = now & 0xFFFFFFFF, start & 0xFFFFFFFF
    throttled, start2, base2 = rate_limit_slot(now32, start32, cand, base, limit)
    claim = z3.And(z3.Implies(z3.Not(throttled), z3.ULT(cand - base2, limit)),
                   z3.Implies(z3.UGT((now32 - start32) & 0xFFFFFFFF, 1000),
                              z3.And(start2 == now32, base2 == cand)))
    return check_claim([now, start, cand, base, limit], [], claim)


@obligation("tier.numab.threshold_bounds", ["TIER-POL-022"], tags=["z3", "numab"])
def threshold_bounds() -> Outcome:
    """From a threshold in [unit, 2 * ref_th] (or 0, the default), one adjustment stays in
    [unit, 2 * ref_th] for every candidate count, every reference threshold from 16 to 2^20 ms
    and every reference candidate count below 2^40."""
    th, ref, diff, ref_cand = z3.BitVecs("th_cur ref_th diff_cand ref_cand", 64)
    unit = z3.UDiv(ref * 2, 16)
    pre = [z3.UGE(ref, 16), z3.ULE(ref, 1 << 20), z3.ULT(ref_cand, 1 << 40),
           z3.ULT(diff, 1 << 40),
           z3.Or(th == 0, z3.And(z3.UGE(th, unit), z3.ULE(th, ref * 2)))]
    new = adjust_threshold(th, ref, diff, ref_cand)
    return check_claim([th, ref, diff, ref_cand], pre,
                       z3.And(z3.UGE(new, unit), z3.ULE(new, ref * 2)))


@obligation("tier.numab.hint_latency_wraps", ["TIER-POL-023"], expected=COUNTEREXAMPLE,
            tags=["z3", "numab", "edge"])
def hint_latency_wraps() -> Outcome:
    """Edge, expected to fail: "a page scanned more than 1000 ms before its hint fault is not
    hot". The scan time lives in 21 bits of ms, so a fault 2^21 ms (about 35 minutes) plus a
    little after the scan reads as a latency below the 1000 ms threshold."""
    now, last = z3.BitVecs("now_ms last_time", 64)
    pre = [z3.ULE(last, now), z3.ULT(now, 1 << 40), z3.UGT(now - last, 1000),
           z3.ULE(now - last, (1 << 21) + 1000)]
    lat = hint_fault_latency(now, last & ((1 << 21) - 1), 21)
    def render(v: dict[str, int | bool]) -> str:
        now_ms, last_ms = int(v["now_ms"]), int(v["last_time"])
        stored = last_ms & ((1 << 21) - 1)
        return (f"hint_fault_latency({now_ms}, {stored}, 21)  # == "
                f"{hint_fault_latency(now_ms, stored, 21)} ms, though the scan was "
                f"{now_ms - last_ms} ms before the fault")
    return check_claim([now, last], pre, z3.UGE(lat, 1000), render)


def _window_claim(as_posted: bool, small: bool = False) -> Outcome:
    last, now, window = z3.BitVecs("last_update now window_jiffies", 64)
    pre = [z3.ULE(last, now), z3.ULT(now, 1 << 62), z3.ULT(window, 1 << 40)]
    if small:  # the default 5 s window at HZ=1000, clocks near boot: a readable example
        pre += [window == DEFAULT_WINDOW_MS["kpromoted-v0"], z3.ULT(now, 1 << 16)]
    restart = kpromoted_new_window(last, now, window, as_posted)
    claim = restart == z3.UGT(now - last, window)

    def render(v: dict[str, int | bool]) -> str:
        a, b, w = int(v["last_update"]), int(v["now"]), int(v["window_jiffies"])
        return (f"kpromoted_new_window({a}, {b}, {w}, as_posted={as_posted})  # == "
                f"{kpromoted_new_window(a, b, w, as_posted)}, {b - a} jiffies after the "
                f"window started, window {w}")
    return check_claim([last, now, window], pre, claim, render)


@obligation("tier.kpromoted.window_fixed", ["TIER-POL-001"], tags=["z3", "kpromoted"])
def kpromoted_window_fixed() -> Outcome:
    """With the v1 fix (``now - last_update``) the window restarts exactly when more than
    ``window`` jiffies have passed, for every clock value and window."""
    return _window_claim(False)


@obligation("tier.kpromoted.window_as_posted", ["TIER-POL-001"], expected=COUNTEREXAMPLE,
            tags=["z3", "kpromoted", "edge"])
def kpromoted_window_as_posted() -> Outcome:
    """Edge, expected to fail: the same claim for the v0 RFC as posted (``last_update -
    now``, unsigned): an access one jiffy into the window wraps to a huge difference and
    restarts it, so the frequency never passes 1 except for accesses in the same jiffy."""
    return _window_claim(True, small=True)


# --- every TIER invariant: a non-vacuity witness and a broken twin (bounded) --------------
#
# A small breadth-first exploration of ``spec.tiering``'s operations (record_access,
# promote_pass, demote, numa_scan, and time passing) on a tiny machine, with
# :func:`checker.explore.explore`: a state is the spec state and the clock. A witness is the
# first state (a shortest program) where the invariant, and every other, holds and its premise
# is exercised; a twin replaces a spec function with a plausible wrong version
# (:func:`checker.spec_twins.installed`; the area's own twins of ``checker.tier_twins`` where
# one fits) and the exploration must reach a state the invariant rejects. Programs print as
# Python; the distinct (state, clock) pairs seen when the search stops are the state count.


@attrs.frozen
class TierBound:
    """A tiny machine and the moves explored on it."""

    config: TierConfig
    pages: tuple[int, ...]        #: pages accessed (and demoted, when on a top tier)
    nids: tuple[int, ...] = (0,)  #: accessing nodes
    src: int = PGHOT_HINT_FAULT
    ticks: tuple[int, ...] = ()   #: jiffies that may pass between two operations
    promote: tuple[int, ...] = ()  #: nodes whose promotion pass may run
    demote: bool = False
    scan: bool = False
    depth: int = 5


def _tier_cfg(variant: str, nodes: tuple[NodeConfig, ...], placement: tuple[int, ...],
              **kw: Any) -> TierConfig:
    return TierConfig(variant=variant, nodes=nodes, placement=placement, page_shift=20,
                      promote_rate_limit_MBps=1, enough_floor_pages=100, pages_per_section=8,
                      kmigrated_batch_nr=2, **kw)


TOP, LOWER = (lambda cap: NodeConfig(cap, True, True)), (lambda cap: NodeConfig(cap, False, False))
#: pghot v6 (default mode): a top-tier node with room for two more pages, a lower-tier node
#: with room for one more; one promotion per second per node (1 MB/s of 1 MB pages) and no
#: free-space bypass (enough_floor_pages 100), so promotions take the rate-limited path.
V6 = TierBound(_tier_cfg("pghot-v6-default", (TOP(3), LOWER(3)), (0, 1, 1)), pages=(0, 1, 2),
               ticks=(1001,), promote=(1,), demote=True, depth=5)
#: The same with the lower tier full: demotion has nowhere to go.
V6_FULL = TierBound(_tier_cfg("pghot-v6-default", (TOP(2), LOWER(2)), (0, 1, 1)), pages=(0,),
                    demote=True, depth=2)
#: NUMA balancing's tiering mode: the scan marks pages PROT_NONE.
NUMAB2 = TierBound(_tier_cfg("numab2", (TOP(2), LOWER(2)), (0, 1)), pages=(0, 1), scan=True,
                   depth=2)
#: pghot v2: one page accessed again and again from one node (its window never restarts).
V2 = TierBound(_tier_cfg("pghot-v2", (TOP(2), LOWER(4)), (0, 1, 1)), pages=(1,), depth=8)
#: A CHMU with one 2-bit counter, epoch mode.
CHMU = TierBound(_tier_cfg("chmu", (TOP(2), LOWER(4)), (0, 1, 1), chmu_counters=1,
                           chmu_counter_bits=2), pages=(1,), src=CHMU_DEVICE, depth=5)

TierNode = tuple[TierState, int]


def _tier_successors(b: TierBound, node: TierNode) -> list[tuple[str, TierNode]]:
    s, now = node
    out: list[tuple[str, TierNode]] = [(f"now += {dt}", (s, now + dt)) for dt in b.ticks]
    calls: list[tuple[str, Callable[[], tuple[TierState, Any]]]] = []
    for p in b.pages:
        for nid in b.nids:
            calls.append((f"record_access(s, {p}, {nid}, {b.src}, now)",
                          functools.partial(T.record_access, s, p, nid, b.src, now)))
        if b.demote and s.config.toptier(s.node_of[p]):
            calls.append((f"demote(s, {p})", functools.partial(T.demote, s, p)))
    calls += [(f"promote_pass(s, {nid}, now)", functools.partial(T.promote_pass, s, nid, now))
              for nid in b.promote]
    if b.scan:
        calls.append((f"numa_scan(s, {list(b.pages)}, now)",
                      functools.partial(T.numa_scan, s, list(b.pages), now)))
    for text, call in calls:
        try:
            s2, _ = call()
        except TierError:
            continue
        out.append((f"s, _ = T.{text}", (s2, now)))
    return out


def _tier_search(b: TierBound, hit: Callable[[TierState], bool]) -> ExploreResult:
    return explore([(initial_state(b.config), 0)], lambda n: _tier_successors(b, n),
                   check=lambda n: "hit" if hit(n[0]) else None, max_depth=b.depth,
                   stop_at_first=True)


def _tier_program(b: TierBound, trace: list[str]) -> str:
    return "\n".join(["from spec import tiering as T",
                      "from spec.tier_state import NodeConfig, TierConfig, initial_state",
                      f"s, now = initial_state({b.config!r}), 0", *trace])


TierCheck = Callable[[TierState], list[str]]


def _tier_witness(rule_id: str, check: TierCheck, b: TierBound,
                  premise: Callable[[TierState], bool], what: str) -> Outcome:
    res = _tier_search(b, lambda s: premise(s) and not T.check_invariants(s))
    if not res.violations:
        return Outcome(COUNTEREXAMPLE, f"{rule_id}: no state within {b.depth} steps where "
                       f"{what}: the invariant is vacuous here", states=res.states)
    v = res.violations[0]
    assert not check(v.state[0])
    return Outcome(PROVED, f"{rule_id} holds where {what}, {len(v.trace)} steps from boot",
                   _tier_program(b, v.trace), states=res.states)


def _tier_twin(rule_id: str, check: TierCheck, b: TierBound, twin: Twin) -> Outcome:
    with installed(twin):
        res = _tier_search(b, lambda s: bool(check(s)))
        if not res.violations:
            return Outcome(PROVED, f"the twin never broke {rule_id} within {b.depth} steps",
                           states=res.states)
        v = res.violations[0]
        bad = check(v.state[0])[0]
    doc = " ".join(twin.doc.split())
    text = (f"# with {twin.target} replaced by the twin ({doc}),\n"
            "# installed by checker.spec_twins.installed\n" + _tier_program(b, v.trace))
    return Outcome(COUNTEREXAMPLE, f"{rule_id}: {bad}", text, states=res.states)


def _moved(s: TierState, up: bool) -> bool:
    cfg = s.config
    return any(cfg.toptier(n) == up and cfg.toptier(p0) != up
               for n, p0 in zip(s.node_of, cfg.placement, strict=True))


def _premise_one_node(s: TierState) -> bool:
    """A page was promoted to the top tier and another demoted from it."""
    return _moved(s, True) and _moved(s, False)


def _premise_capacity(s: TierState) -> bool:
    """A migration filled a node to its capacity."""
    held = Counter(s.node_of)
    return s.node_of != s.config.placement and any(
        held[nid] == n.capacity for nid, n in enumerate(s.config.nodes))


def _premise_rate_limit(s: TierState) -> bool:
    """A node promoted rate_limit pages in the current one-second slot: the limit is
    reached."""
    lim = s.config.rate_limit_pages
    return any(p.slot_promoted == lim for p in s.pgdat)


def _premise_lower_tier(s: TierState) -> bool:
    """A tracked page was promoted (its record consumed) while another lower-tier page is
    still tracked."""
    return _moved(s, True) and bool(s.records)


def _premise_records(s: TierState) -> bool:
    """A record's frequency is saturated at its field's maximum and its ready bit is
    set."""
    lay = pghot.LAYOUTS.get(s.config.variant)
    return lay is not None and any(
        isinstance(r, int) and (r >> lay.freq_shift) & lay.freq_max == lay.freq_max
        and r >> lay.ready_bit & 1 for _, r in s.records)


def _premise_structures(s: TierState) -> bool:
    """Every CHMU counter is in use and one is saturated at 2**counter_bits - 1."""
    cfg = s.config
    return len(s.chmu_counters) == cfg.chmu_counters and any(
        c == (1 << cfg.chmu_counter_bits) - 1 for _, c in s.chmu_counters)


def _demote_to_no_node(orig: Callable[..., Any]) -> Callable[..., Any]:
    """demote_folio_list without its ``target_nid == NUMA_NO_NODE`` test: with every
    lower-tier node full, the page is "migrated" to NUMA_NO_NODE."""
    def twin(s: TierState, pfn: int) -> tuple[TierState, int | None]:
        s2, nid = orig(s, pfn)
        if nid is None:
            node_of = list(s2.node_of)
            node_of[pfn] = NUMA_NO_NODE
            return attrs.evolve(s2, node_of=tuple(node_of)), NUMA_NO_NODE
        return s2, nid
    return twin


def _rate_limit_never_throttles(orig: Callable[..., Any]) -> Callable[..., Any]:
    """numa_promotion_rate_limit always lets the candidate through (the slot is kept)."""
    def twin(*a: Any) -> Any:
        _, start, base = orig(*a)
        return False, start, base
    return twin


def _v2_frequency_unmasked(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The v2 increment in a plain u32 rather than the 3-bit field: 7 becomes 8, which the
    record's frequency:3 cannot hold."""
    return lambda freq: ite(ult(freq, 8), freq + 1, freq)


TIER_INV_OBLIGATIONS: tuple[tuple[str, TierCheck, TierBound, Callable[[TierState], bool],
                                  TierBound, Twin], ...] = (
    ("TIER-INV-001", T.one_node_per_page, V6, _premise_one_node, V6_FULL,
     Twin(("TIER-INV-001", "TIER-OP-040"), "spec.tiering:demote", _demote_to_no_node,
          _demote_to_no_node.__doc__ or "")),
    ("TIER-INV-002", T.capacity, V6, _premise_capacity, V6_FULL,
     tier_twins.TWINS["TIER-OP-040"]),
    ("TIER-INV-003", T.rate_limit_respected, V6, _premise_rate_limit, V6,
     Twin(("TIER-INV-003", "TIER-POL-021"), "spec.numab:rate_limit_slot",
          _rate_limit_never_throttles, _rate_limit_never_throttles.__doc__ or "")),
    ("TIER-INV-004", T.records_only_lower_tier, V6, _premise_lower_tier, NUMAB2,
     tier_twins.TWINS["TIER-OP-021"]),
    ("TIER-INV-005", T.records_well_formed, V6, _premise_records, V2,
     Twin(("TIER-INV-005", "TIER-POL-012"), "spec.pghot:v2_next_frequency",
          _v2_frequency_unmasked, _v2_frequency_unmasked.__doc__ or "")),
    ("TIER-INV-006", T.bounded_structures, CHMU, _premise_structures, CHMU,
     tier_twins.TWINS["TIER-OP-030"]),
)


def _register_invariant_obligations() -> None:
    for rid, check, wb, premise, tb, twin in TIER_INV_OBLIGATIONS:
        what = " ".join((premise.__doc__ or "").split()).rstrip(".")
        what = what[0].lower() + what[1:]
        add(f"tier.nonvacuity.{rid}", [rid],
            functools.partial(_tier_witness, rid, check, wb, premise, what), PROVED,
            ["bounded", "nonvacuity"],
            f"Non-vacuity of {rid}: on a tiny {wb.config.variant} machine, a program of up "
            f"to {wb.depth} steps reaches a state where every TIER invariant holds and "
            f"{what}; the program is printed.")
        add(f"tier.twin.{rid}", list(dict.fromkeys([rid, *twin.rules])),
            functools.partial(_tier_twin, rid, check, tb, twin), COUNTEREXAMPLE,
            ["bounded", "twin"],
            f"Broken twin of {rid}, expected to fail: {' '.join(twin.doc.split())} On a tiny "
            f"{tb.config.variant} machine a program of up to {tb.depth} steps reaches a state "
            "the invariant rejects.")


_register_invariant_obligations()
