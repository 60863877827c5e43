"""Tiered memory: the operations every TIER variant shares, demotion, and the invariants.

Operations are ``op(state, args) -> (state', result)`` over :class:`spec.tier_state.TierState`:

``record_access(s, pfn, nid, src, now)``
    the tracker's entry point: kpromoted_record_access (kpromoted-v0), pghot_record_access
    (pghot-v1/v3/v6), the NUMA hint fault (numab2: only a PROT_NONE page faults), or the CHMU
    device counting an access (chmu).
``numa_scan(s, pfns, now)``
    numab2 only: the scanner's PROT_NONE marking with the scan time.
``promote_pass(s, nid, now)``
    the promoting thread: kpromoted%nid, pghot v1 kpromoted%nid, kmigrated%nid, or the CHMU
    epoch end and hot-list consumption (numab2 promotes in the fault and has no thread).
``demote(s, pfn)``
    reclaim-driven demotion of one page to the next demotion node.

Each returns promotions as ``(pfn, target, reason)`` so that TIER-PROP-001 can be checked
against the state before the step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from spec import chmu, kpromoted, numab, pghot
from spec.rules import rule
from spec.tier_common import NUMA_NO_NODE, field, jiffies_to_msecs, mask, msecs_to_jiffies
from spec.tier_state import KRecord, TierConfig, TierError, TierState, TierWork, initial_state

__all__ = ["TierConfig", "TierError", "TierState", "initial_state", "record_access",
           "numa_scan", "promote_pass", "demote", "check_invariants", "promotion_test"]

Promotion = tuple[int, int, str]


def record_access(s: TierState, pfn: int, nid: int, src: int, now: int
                  ) -> tuple[TierState, Any]:
    w = TierWork(s)
    v = s.config.variant
    result: Any
    if v == "kpromoted-v0":
        result = kpromoted.kpromoted_record_access(w, pfn, nid, src, now)
    elif s.config.heap_tracker:
        result = pghot.pghot_v1_record_access(w, pfn, nid, src, now)
    elif v == "numab2":
        got = numab.numab2_hint_fault(w, pfn, nid, now)
        result = [] if got is None else [(pfn, got[0], got[1])]
    elif v == "chmu":
        result = chmu.chmu_record_access(w, pfn, src)
    else:
        result = pghot.pghot_record_access(w, pfn, nid, src, now)
    return w.freeze(), result


def numa_scan(s: TierState, pfns: list[int], now: int) -> tuple[TierState, None]:
    if s.config.variant != "numab2":
        raise TierError("numa_scan models NUMA-balancing tiering mode (variant numab2)")
    w = TierWork(s)
    numab.numa_scan(w, list(pfns), now)
    return w.freeze(), None


def promote_pass(s: TierState, nid: int, now: int) -> tuple[TierState, list[Promotion]]:
    w = TierWork(s)
    w.check_nid(nid)
    if nid == NUMA_NO_NODE:
        raise TierError("promote_pass needs a node")
    v = s.config.variant
    out: list[Promotion]
    if v == "kpromoted-v0":
        out = [(p, nid, "ok") for p in kpromoted.kpromoted_migrate(w, nid, now)]
    elif s.config.heap_tracker:
        out = [(p, nid, "ok") for p in pghot.pghot_v1_kpromoted_migrate(w, nid, now)]
    elif v == "numab2":
        out = []
    elif v == "chmu":
        out = chmu.chmu_promote(w, now)
    else:
        out = pghot.kmigrated_do_work(w, nid, now)
    return w.freeze(), out


@rule("TIER-OP-040", "Reclaim-driven demotion",
      "mm/vmscan.c:demote_folio_list; mm/memory-tiers.c:next_demotion_node @ v6.18")
def demote(s: TierState, pfn: int) -> tuple[TierState, int | None]:
    """
    With demotion enabled, reclaim on a top-tier node migrates a candidate folio to
    ``next_demotion_node``: one of the nearest nodes of the next lower tier (the kernel picks
    at random among equally near ones; the model takes the lowest-numbered lower-tier node
    that has a free page, which the kernel's choice is allowed to be). With no such node the
    page stays (the kernel would reclaim it by other means). Counts pgdemote_kswapd. Records
    are not touched: pghot never learns of demotions.
    """
    w = TierWork(s)
    w.check_page(pfn)
    cfg = s.config
    src = w.node_of[pfn]
    if not cfg.toptier(src):
        raise TierError(f"page {pfn} is on lower-tier node {src}: nothing to demote")
    for nid, node in enumerate(cfg.nodes):
        if not node.toptier and w.used(nid) < node.capacity:
            w.node_of[pfn] = nid
            w.pgdat[src]["pgdemote"] += 1
            w.count("pgdemote_kswapd")
            return w.freeze(), nid
    return w.freeze(), None


# --- invariants ------------------------------------------------------------------------------

Violation = tuple[str, str]


@rule("TIER-INV-001", "A page lives on exactly one node", "mm/migrate.c (folio_nid) @ v6.18")
def one_node_per_page(s: TierState) -> list[str]:
    """The per-node page sets are disjoint and together hold every page exactly once."""
    lo, hi = min(s.node_of, default=0), max(s.node_of, default=0)
    if len(s.node_of) >= s.config.nr_pages and 0 <= lo and hi < len(s.config.nodes):
        return []  # every page on an existing node: the sets partition the pages
    seen: dict[int, int] = {}
    out = []
    for nid, pages in enumerate(s.placement()):
        for p in pages:
            if p in seen:
                out.append(f"page {p} on nodes {seen[p]} and {nid}")
            seen[p] = nid
    missing = set(range(s.config.nr_pages)) - set(seen)
    if missing:
        out.append(f"pages on no node: {sorted(missing)[:5]}")
    return out


@rule("TIER-INV-002", "No node exceeds its capacity",
      "mm/page_alloc.c (node_present_pages) @ v6.18")
def capacity(s: TierState) -> list[str]:
    """Every node holds at most ``capacity`` pages."""
    held = Counter(s.node_of)
    return [f"node {nid} holds {held[nid]} pages, capacity {node.capacity}"
            for nid, node in enumerate(s.config.nodes) if held[nid] > node.capacity]


@rule("TIER-INV-003", "The rate limit holds in every one-second slot",
      "kernel/sched/fair.c:numa_promotion_rate_limit; mm/pghot.c @ v6.18")
def rate_limit_respected(s: TierState) -> list[str]:
    """
    On every node, the pages promoted on the rate-limited path since the current slot began
    (TIER-POL-021) are at most ``rate_limit`` pages. Bypass promotions (TIER-POL-020) and
    the variants without a rate limit (kpromoted-v0, pghot-v1) count none.
    """
    lim = s.config.rate_limit_pages
    return [f"node {nid} promoted {p.slot_promoted} pages in one slot, limit {lim}"
            for nid, p in enumerate(s.pgdat) if p.slot_promoted > lim]


@rule("TIER-INV-004", "Only lower-tier pages are tracked",
      "mm/kpromoted.c, mm/pghot.c:*_record_access (node_is_toptier) @ v0..v6")
def records_only_lower_tier(s: TierState) -> list[str]:
    """
    No kpromoted/pghot record and no PROT_NONE tiering stamp exists for a page on a top-tier
    node: accesses to top-tier pfns are dropped, and promotion deletes or consumes the record.
    """
    cfg = s.config
    out = [f"page {p} on top-tier node {s.node_of[p]} has a record"
           for p, _ in s.records if cfg.toptier(s.node_of[p])]
    out += [f"page {p} on top-tier node {s.node_of[p]} is PROT_NONE for tiering"
            for p in s.prot_none if cfg.toptier(s.node_of[p])]
    return out


@rule("TIER-INV-005", "Records fit their fields",
      "include/linux/pghot.h (phi_t); include/linux/kpromoted.h @ v0..v6")
def records_well_formed(s: TierState) -> list[str]:
    """
    A v6 default record is a byte; a precise record a u32 with bits 27-30 clear and a valid
    nid; a v3 record has bits 32-62 clear; a kpromoted/v1 record has frequency >= 1; a v2
    record fits its u32 bit-fields (frequency:3, nid:10, last_update:19). (A
    ready record need not hold a frequency at the threshold: the ready bit is sticky, and a
    later access that restarts the window sets the frequency back to 1 under it.)
    """
    cfg = s.config
    out = []
    lay = pghot.LAYOUTS.get(cfg.variant)
    for p, r in s.records:
        if isinstance(r, KRecord):
            if cfg.variant == "pghot-v2":
                if not (0 <= r.frequency <= 7 and 0 <= r.last_update < (1 << 19)
                        and 0 <= r.hot_node < 1024):
                    out.append(f"page {p}: {r} does not fit frequency:3 nid:10 last_update:19")
            elif r.frequency < 1:
                out.append(f"page {p}: frequency {r.frequency}")
            continue
        assert lay is not None
        if not 0 <= r < (1 << lay.bits):
            out.append(f"page {p}: record {r:#x} exceeds {lay.bits} bits")
            continue
        used = (mask(lay.freq_width) << lay.freq_shift) | (mask(lay.time_width) << lay.time_shift)
        used |= 1 << lay.ready_bit
        if lay.nid_shift is not None:
            used |= mask(lay.nid_width) << lay.nid_shift
            if field(r, lay.nid_shift, lay.nid_width) >= len(cfg.nodes) and r:
                out.append(f"page {p}: nid field names no node")
        if r & ~used:
            out.append(f"page {p}: record {r:#x} sets unused bits")
    return out


@rule("TIER-INV-006", "Tracker structures stay within their bounds",
      "mm/pghot.c:phi_heap_insert @ v1; cxl-hmu.rst @ RFC 2024-11-21")
def bounded_structures(s: TierState) -> list[str]:
    """
    pghot v1: every heap has at most ``phi_heap_entries`` members, each with a record of
    frequency >= 2 when it entered. CHMU: at most ``chmu_counters`` counters, each in
    1 .. 2**counter_bits - 1, and at most ``chmu_hotlist`` hot-list entries.
    """
    cfg = s.config
    out = []
    if cfg.heap_tracker:
        lower = sum(n.capacity for n in cfg.nodes if not n.toptier)
        cap = lower * cfg.hash_pct // 100 * cfg.heap_pct // 100
        recs = dict(s.records)
        for nid, h in enumerate(s.heaps):
            if len(h) > cap:
                out.append(f"heap of node {nid} holds {len(h)} > {cap}")
            out += [f"heap member {p} has no record" for p in h if p not in recs]
    if len(s.chmu_counters) > cfg.chmu_counters:
        out.append(f"{len(s.chmu_counters)} CHMU counters > {cfg.chmu_counters}")
    out += [f"CHMU unit {u} count {c}" for u, c in s.chmu_counters
            if not 1 <= c <= mask(cfg.chmu_counter_bits)]
    if len(s.chmu_hotlist) > cfg.chmu_hotlist:
        out.append(f"CHMU hot list holds {len(s.chmu_hotlist)} > {cfg.chmu_hotlist}")
    return out


INVARIANTS = (one_node_per_page, capacity, rate_limit_respected, records_only_lower_tier,
              records_well_formed, bounded_structures)


def check_invariants(s: TierState) -> list[Violation]:
    out: list[Violation] = []
    for inv in INVARIANTS:
        rid = inv.__rules__[0]  # type: ignore[attr-defined]
        out += [(rid, m) for m in inv(s)]
    return out


@rule("TIER-PROP-001", "A promoted page met the promotion test at decision time",
      "mm/kpromoted.c, mm/pghot.c, kernel/sched/fair.c @ v0..v6, v6.18")
def promotion_test(before: TierState, pfn: int, target: int, reason: str, now: int) -> str:
    """
    Judged on the state before the step: the page was on a lower tier and the target is a
    top-tier node; kpromoted-v0: its record passed TIER-POL-002 with hot_node = target;
    pghot-v1: its record had frequency >= 2 and sat in the target's heap; pghot v3/v6: its
    record's ready bit was set, and, unless the free-space bypass applied, its access latency
    was below twice the window (the adaptive threshold's ceiling); numab2: the page was
    PROT_NONE and, unless bypassed, the time since its stamp was below twice
    hot_threshold_ms; chmu: the page's unit was on the hot list or its counter met the
    threshold. Returns "" when it held, else why not.
    """
    cfg = before.config
    if cfg.toptier(before.node_of[pfn]):
        return f"page {pfn} was already on top-tier node {before.node_of[pfn]}"
    if not cfg.toptier(target):
        return f"target {target} is not top tier"
    rec = before.record(pfn)
    v = cfg.variant
    window_j = msecs_to_jiffies(cfg.window_ms, cfg.hz)
    if v == "kpromoted-v0":
        if rec is None:
            return "no record"
        verdict = kpromoted.page_should_be_promoted(before.node_of[pfn], rec.hot_node,
                                                    rec.last_update, rec.frequency, now, window_j)
        if verdict != kpromoted.PROMOTE or rec.hot_node != target:
            return f"record {rec} fails the promotion test (verdict {verdict})"
        return ""
    if cfg.heap_tracker:
        if rec is None or rec.frequency < 2 or pfn not in before.heaps[target]:
            return f"record {rec} was not a heap candidate of node {target}"
        return ""
    if v == "numab2":
        if pfn not in before.prot_none:
            return "page was not PROT_NONE: no hint fault"
        if reason == "nrl":
            return ""
        lat = numab.hint_fault_latency(jiffies_to_msecs(now, cfg.hz),
                                       dict(before.access_time).get(pfn, 0),
                                       cfg.access_time_bits)
        return "" if lat < 2 * cfg.hot_threshold_ms else f"latency {lat} ms is not hot"
    if v == "chmu":
        unit = pfn >> cfg.chmu_unit_order
        if unit in before.chmu_hotlist or dict(before.chmu_counters).get(unit, 0) >= \
                cfg.chmu_threshold:
            return ""
        return f"unit {unit} was not hot"
    lay = pghot.LAYOUTS[v]
    if rec is None or not field(rec, lay.ready_bit, 1):
        return f"record {rec!r} was not ready"
    if reason == "nrl":
        return ""
    lat = pghot.pghot_access_latency(lay, field(rec, lay.time_shift, lay.time_width), now,
                                     cfg.hz)
    return "" if lat < 2 * cfg.window_ms else f"access latency {lat} ms is not recent"
