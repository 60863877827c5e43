"""pghot (Bharata B Rao, 2025-08 .. 2026-05): the hash + heap tracker of v1, the per-PFN record
of v3, the compact records of v6 (default u8, precise u32), and kmigrated.

Sources: v1 mm/pghot.c <20250814134826.154003-1-bharata@amd.com>; v3 cover letter
<20251110052343.208768-1-bharata@amd.com>; v6 mm/pghot.c, pghot-default.c, pghot-precise.c,
include/linux/pghot.h <20260323095104.238982-1-bharata@amd.com>. Record words are bit-exact;
the update functions are pure and run on ints and Z3 bit-vectors.
"""

from __future__ import annotations

from typing import Any

import attrs

from spec.numab import migrate_balanced, promotion_throttle
from spec.rules import declare, rule
from spec.tier_common import (
    BITS_PER_LONG,
    NUMA_NO_NODE,
    PGHOT_HINT_FAULT,
    field,
    ite,
    jiffies_to_msecs,
    lshr,
    mask,
    msecs_to_jiffies,
    set_field,
    uge,
    ugt,
    ult,
    usub,
)
from spec.tier_state import KRecord, TierError, TierWork

KMIGRATED_DEFAULT_SLEEP_MS = 100
KMIGRATED_DEFAULT_BATCH_NR = 512
KMIGRATED_PROMOTION_THRESHOLD_WINDOW = 60000
PGHOT_V1_KPROMOTE_DELAY_MS = 20
KPRMOTED_MIGRATE_BATCH = 1024


@attrs.frozen
class Layout:
    """Where a record keeps its fields; ``time_shift_in`` buckets jiffies (default mode)."""

    name: str
    bits: int
    freq_shift: int
    freq_width: int
    time_shift: int
    time_width: int
    ready_bit: int
    nid_shift: int | None = None
    nid_width: int = 0
    time_bucket_shift: int = 0

    @property
    def freq_max(self) -> int:
        return mask(self.freq_width)


DEFAULT = Layout("pghot-v6-default", 8, freq_shift=0, freq_width=2, time_shift=2, time_width=5,
                 ready_bit=7, time_bucket_shift=7)
PRECISE = Layout("pghot-v6-precise", 32, nid_shift=0, nid_width=10, freq_shift=10,
                 freq_width=3, time_shift=13, time_width=14, ready_bit=31)
V3 = Layout("pghot-v3", 64, freq_shift=0, freq_width=3, nid_shift=3, nid_width=10,
            time_shift=13, time_width=19, ready_bit=63)
LAYOUTS = {lay.name: lay for lay in (DEFAULT, PRECISE, V3)}

declare("TIER-POL-010", "pghot record layouts", """
    default (u8 phi_t): bits 0-1 frequency (saturates at 3), bits 2-6 time bucket = jiffies >> 7
    (128 jiffies; 32 buckets = 4096 jiffies), bit 7 ready for migration; no node: every
    promotion goes to the one global pghot_target_nid (default 0).
    precise (u32, CONFIG_PGHOT_PRECISE): bits 0-9 nid (the accessing node, or
    pghot_target_nid for NUMA_NO_NODE), bits 10-12 frequency (saturates at 7), bits 13-26
    jiffies mod 2**14, bits 27-30 unused, bit 31 ready.
    v3 (unsigned long per lower-tier pfn): bit 63 ready; bits 0-31 frequency/nid/time. The
    packing inside bits 0-31 is not in the cover letter: the model uses v2's u32 bit-field
    order (frequency:3, nid:10, last_update:19) and v6's saturating update (UNVERIFIED).
    Storage per lower-tier 4 KiB page: 1, 4 and 8 bytes.
    """, "include/linux/pghot.h @ pghot v6 2026-03-23", obj=LAYOUTS)


@rule("TIER-POL-011", "pghot access latency (wrap-around)",
      "mm/pghot-default.c, mm/pghot-precise.c:pghot_access_latency @ pghot v6")
def pghot_access_latency(layout: Layout, old_time: Any, now: Any, hz: int = 1000) -> Any:
    """
    Default mode: ``((now & (31 << 7)) - (old_time << 7)) & (31 << 7)`` jiffies in ms: only
    the bucket bits of ``now`` count, so two accesses 4096 jiffies apart look simultaneous,
    and the latency never exceeds 3968 jiffies. Precise mode: ``(now - old_time) & 0x3fff``
    jiffies (wraps every 16.384 s at HZ=1000). ``old_time`` is the stored field.
    """
    if layout.time_bucket_shift:
        bucket_mask = mask(layout.time_width) << layout.time_bucket_shift
        d = ((now & bucket_mask) - (old_time << layout.time_bucket_shift)) & bucket_mask
        return jiffies_to_msecs(d, hz)
    return jiffies_to_msecs((now - old_time) & mask(layout.time_width), hz)


@rule("TIER-OP-010", "pghot_update_record",
      "mm/pghot-default.c, mm/pghot-precise.c:pghot_update_record @ pghot v6")
def pghot_update_record(layout: Layout, word: Any, nid: Any, now: Any, window_ms: Any,
                        threshold: Any, hz: int = 1000) -> tuple[Any, Any]:
    """
    With ``old`` the stored time field: a new window starts when
    ``pghot_access_latency(old, now) > freq_window`` (ms): frequency 1; otherwise the
    frequency saturates at its field maximum. The time field takes ``now`` (bucketed in default
    mode), the nid field (precise) the accessing node. The ready bit is set when the frequency
    reaches ``freq_threshold`` and is never cleared here (only pghot_get_record clears the
    whole record). Returns ``(word', ready)``. A zero record is a record with frequency 0.
    """
    old_freq = field(word, layout.freq_shift, layout.freq_width)
    old_time = field(word, layout.time_shift, layout.time_width)
    stamp = lshr(now, layout.time_bucket_shift)
    new_window = ugt(pghot_access_latency(layout, old_time, now, hz), window_ms)
    freq = ite(new_window, 1, ite(ult(old_freq, layout.freq_max), old_freq + 1, old_freq))
    w = set_field(word, layout.freq_shift, layout.freq_width, freq)
    w = set_field(w, layout.time_shift, layout.time_width, stamp)
    if layout.nid_shift is not None:
        w = set_field(w, layout.nid_shift, layout.nid_width, nid)
    w = ite(uge(freq, threshold), w | (1 << layout.ready_bit), w)
    return w, field(w, layout.ready_bit, 1) == 1


def pghot_get_record(layout: Layout, word: int, target_nid: int
                     ) -> tuple[int, tuple[int, int, int] | None]:
    """A ready record is consumed (the whole word cleared) and yields (nid, freq, time)."""
    if not field(word, layout.ready_bit, 1):
        return word, None
    nid = target_nid if layout.nid_shift is None else field(word, layout.nid_shift,
                                                            layout.nid_width)
    return 0, (nid, field(word, layout.freq_shift, layout.freq_width),
               field(word, layout.time_shift, layout.time_width))


@rule("TIER-OP-011", "pghot_record_access (per-PFN records)",
      "mm/pghot.c:pghot_record_access @ pghot v6", variants=("pghot-v3", "pghot-v6-default",
                                                           "pghot-v6-precise"))
def pghot_record_access(w: TierWork, pfn: int, nid: int, src: int, now: int) -> int:
    """
    -EINVAL for an invalid node or a source the variant does not have. Ignored (0): an access
    from the page's own node (``pfn_to_nid(pfn) == nid``) and any access to a top-tier page.
    Otherwise pghot_recorded_accesses counts it, TIER-OP-010 updates the record, and if the
    record is ready the page's section is marked hot and kmigrated on the page's node is
    activated.
    """
    cfg = w.config
    w.check_page(pfn)
    if nid != NUMA_NO_NODE and not 0 <= nid < len(cfg.nodes):
        return -22
    if src not in cfg.sources():
        return -22
    w.count("pghot_recorded_hintfaults" if src == PGHOT_HINT_FAULT
            else "pghot_recorded_hwhints")
    src_nid = w.node_of[pfn]
    if src_nid == nid or cfg.toptier(src_nid):
        return 0
    w.count("pghot_recorded_accesses")
    layout = LAYOUTS[cfg.variant]
    stored_nid = cfg.pghot_target_nid if nid == NUMA_NO_NODE else nid
    word, ready = pghot_update_record(layout, w.records.get(pfn, 0), stored_nid, now,
                                      cfg.window_ms, cfg.freq_threshold, cfg.hz)
    w.records[pfn] = word
    if ready:
        w.hot_sections.add(pfn // cfg.pages_per_section)
        w.kmigrated_activate.add(src_nid)
    return 0


@rule("TIER-OP-012", "kmigrated pass of one lower-tier node",
      "mm/pghot.c:kmigrated_do_work, kmigrated_walk_zone, kmigrated_should_migrate_memory "
      "@ pghot v6", variants=("pghot-v3", "pghot-v6-default", "pghot-v6-precise"))
def kmigrated_do_work(w: TierWork, nid: int, now: int) -> list[tuple[int, int, str]]:
    """
    kmigrated%d runs per lower-tier node and works only when activated (every
    KMIGRATED_DEFAULT_SLEEP_MS = 100 ms it checks). It clears the activation, walks the
    node's sections whose hot bit is set (test-and-clear) in pfn order, and for each page of
    the node whose record is ready consumes the record (pghot_get_record clears it), takes the
    target node (precise: the recorded nid; default: pghot_target_nid), skips a page already
    there, applies the throttle (TIER-POL-020 bypass; else the adaptive threshold
    TIER-POL-022 on ``pghot_access_latency(time, now) >= th`` with ``th`` starting at
    freq_window; else the rate limit TIER-POL-021) and the balanced-node test TIER-POL-024
    at isolation time, and batches pages per target; a batch is migrated when it grows past
    kmigrated_batch_nr, when the target changes, and at the end, newest first (list_add).
    A record consumed but not promoted is lost. Returns ``(pfn, target, reason)`` per
    promoted page.
    """
    cfg = w.config
    if cfg.toptier(nid):
        raise TierError(f"node {nid} is top tier: kmigrated runs on lower-tier nodes")
    if nid not in w.kmigrated_activate:
        return []
    w.kmigrated_activate.discard(nid)
    layout = LAYOUTS[cfg.variant]
    done: list[tuple[int, int, str]] = []
    pending: list[tuple[int, str]] = []
    cur = NUMA_NO_NODE

    def flush(target: int) -> None:
        for pfn, why in reversed(pending):
            if w.used(target) < cfg.nodes[target].capacity:
                w.node_of[pfn] = target
                w.pgdat[target]["pgpromote_success"] += 1
                if why == "ok":
                    w.pgdat[target]["slot_promoted"] += 1
                w.count("pgpromote_success")
                done.append((pfn, target, why))
            else:
                w.count("pgmigrate_fail")
        pending.clear()

    for section in sorted(w.hot_sections):
        first = section * cfg.pages_per_section
        if first >= cfg.nr_pages:
            continue
        w.hot_sections.discard(section)
        for pfn in range(first, min(first + cfg.pages_per_section, cfg.nr_pages)):
            if w.node_of[pfn] != nid:
                continue
            word, got = pghot_get_record(layout, w.records.get(pfn, 0), cfg.pghot_target_nid)
            if got is None:
                continue
            if word == 0:
                w.records.pop(pfn, None)
            target, _freq, time = got
            if w.node_of[pfn] == target:
                continue
            latency = pghot_access_latency(layout, time, now, cfg.hz)
            ok, why = promotion_throttle(w, target, now, cfg.window_ms,
                                         KMIGRATED_PROMOTION_THRESHOLD_WINDOW, latency)
            if not ok:
                continue
            node = cfg.nodes[target]
            if not migrate_balanced(node.capacity - w.used(target), node.high_wmark, 1):
                w.count("pgmigrate_fail")
                continue
            if cur == NUMA_NO_NODE:
                cur = target
            if cur != target:
                flush(cur)
                cur = target
            pending.append((pfn, why))
            if len(pending) > cfg.kmigrated_batch_nr:
                flush(cur)
    if pending:
        flush(cur)
    return done


# --- v1/v2: hash lists + per-top-tier-node max-heap ---

V2_TIME_BITS = 19
V2_FREQ_BITS = 3
#: PGHOT_FREQ_MAX in v2 is ``1 << PGHOT_FREQ_BITS``, one more than the field holds.
V2_PGHOT_FREQ_MAX = 1 << V2_FREQ_BITS


@rule("TIER-POL-012", "pghot v2 frequency bit-field increment (wraps at 8)",
      "mm/pghot.c:pghot_record_access @ pghot v2 2025-09-10", variants=("pghot-v2",))
def v2_next_frequency(freq: Any) -> Any:
    """
    ``if (frequency < PGHOT_FREQ_MAX) frequency++`` on ``u32 frequency:3`` with
    PGHOT_FREQ_MAX = 8: 7 becomes 8, stored as 0.
    """
    return ite(ult(freq, V2_PGHOT_FREQ_MAX), (freq + 1) & mask(V2_FREQ_BITS), freq)


def v1_heap_capacity(w: TierWork) -> int:
    """phi_heap_entries = (lower-tier pages * 50 / 100) * 25 / 100."""
    cfg = w.config
    lower = sum(n.capacity for n in cfg.nodes if not n.toptier)
    return lower * cfg.hash_pct // 100 * cfg.heap_pct // 100


@rule("TIER-OP-013", "pghot v1 record access (hash + heap)",
      "mm/pghot.c:pghot_record_access, phi_heap_add_or_adjust @ pghot v1 2025-08-14, "
      "v2 2025-09-10", variants=("pghot-v1", "pghot-v2"))
def pghot_v1_record_access(w: TierWork, pfn: int, nid: int, src: int, now: int) -> int:
    """
    Top-tier pfns are ignored. A new record (zeroed: last_update 0, nid 0) starts with
    frequency 1 and goes into the hash only. An existing record restarts its window (frequency
    1) when ``now - last_update > 5 s`` or when a known accessing node differs from the
    recorded one, else its frequency grows (no cap); last_update = now; nid = the accessing
    node, or KPROMOTED_DEFAULT_NODE 0. Then, in the heap of the record's (new) node: a
    member whose frequency fell below 2 leaves it; a non-member with frequency >= 2 enters if
    the heap has room (``phi_heap_entries``), else stays out silently. The posted code leaves
    a record in its old node's heap when the node changes (so it can sit in two heaps, and
    extracting it from one frees it under the other); the model keeps the membership and
    removes the record from every heap when it is extracted. Records outside the heap are
    never freed. pghot_recorded_accesses counts the call before the source is checked.

    v2 packs the record into u32 bit-fields (frequency:3, nid:10, last_update:19): the time is
    ``now & (2**19 - 1)`` and the window test ``(cur - last_update) > window`` is unsigned
    32-bit, so a wrap of the 19-bit clock restarts the window and accesses 2**19 jiffies apart
    alias. The increment (TIER-POL-012) wraps the frequency to 0 on the eighth access in a
    window, and the record leaves the heap, so the hottest pages drop out of the candidates.
    """
    cfg = w.config
    w.check_page(pfn)
    w.check_nid(nid)
    w.count("pghot_recorded_accesses")
    if src not in cfg.sources():
        return -22
    if cfg.toptier(w.node_of[pfn]):
        return 0
    rec = w.records.get(pfn)
    new_entry = rec is None
    if rec is None:
        rec = KRecord(last_update=0, frequency=0, recency=0, hot_node=0, seq=w.seq)
        w.seq += 1
    window = msecs_to_jiffies(cfg.window_ms, cfg.hz)
    v2 = cfg.variant == "pghot-v2"
    cur = now & mask(V2_TIME_BITS) if v2 else now
    elapsed = usub(cur, rec.last_update, 32 if v2 else BITS_PER_LONG)
    new_window = bool(ugt(elapsed, window)) or (nid != NUMA_NO_NODE and rec.hot_node != nid)
    if new_entry or new_window:
        freq = 1
    elif v2:
        freq = v2_next_frequency(rec.frequency)
    else:
        freq = rec.frequency + 1
    hot = 0 if nid == NUMA_NO_NODE else nid
    w.records[pfn] = KRecord(last_update=cur, frequency=freq, recency=cur, hot_node=hot,
                             seq=rec.seq)
    if new_entry:
        w.count("pghot_records_hash")
        return 0
    heap = w.heaps[hot]
    if pfn in heap:
        if freq < 2:
            heap.discard(pfn)
    elif freq >= 2 and len(heap) < v1_heap_capacity(w):
        heap.add(pfn)
        w.count("pghot_records_heap")
    return 0


@rule("TIER-OP-014", "pghot v1 kpromoted pass (heap extraction)",
      "mm/pghot.c:kpromoted_migrate, phi_heap_extract @ pghot v1 2025-08-14, v2 2025-09-10",
      variants=("pghot-v1", "pghot-v2"))
def pghot_v1_kpromoted_migrate(w: TierWork, nid: int, now: int) -> list[int]:
    """
    kpromoted%d runs per top-tier node with CPUs every 20 ms. Up to 1024 times it takes the
    heap's top record (highest frequency; the order among equal frequencies is the heap's,
    which the model fixes as lowest pfn first) while its frequency is >= 2, removes it from
    heap and hash and frees it; if the folio is not on ``nid`` and the record is not older
    than 2 * window it is isolated (TIER-POL-024) and the batch is migrated to ``nid``. v2
    (patch 3/8) dropped the staleness test.
    """
    cfg = w.config
    if not (cfg.toptier(nid) and cfg.nodes[nid].has_cpu):
        raise TierError(f"node {nid}: kpromoted runs on top-tier nodes with CPUs")
    window = msecs_to_jiffies(cfg.window_ms, cfg.hz)
    batch: list[int] = []
    heap = w.heaps[nid]
    for _ in range(KPRMOTED_MIGRATE_BATCH):
        if not heap:
            break
        top = min(heap, key=lambda p: (-w.records[p].frequency, p))
        rec = w.records[top]
        if rec.frequency < 2:
            break
        for h in w.heaps:
            h.discard(top)
        del w.records[top]
        if w.node_of[top] == rec.hot_node:
            w.count("kpromoted_right_node")
            continue
        if cfg.variant == "pghot-v1" and ugt(usub(now, rec.last_update, BITS_PER_LONG),
                                             2 * window):
            w.count("kpromoted_cold_old")
            continue
        node = cfg.nodes[nid]
        if migrate_balanced(node.capacity - w.used(nid), node.high_wmark, 1):
            batch.append(top)
    promoted = []
    for pfn in reversed(batch):
        if w.used(nid) < cfg.nodes[nid].capacity:
            w.node_of[pfn] = nid
            w.pgdat[nid]["pgpromote_success"] += 1
            w.count("pgpromote_success")
            promoted.append(pfn)
        else:
            w.count("pgmigrate_fail")
    return promoted
