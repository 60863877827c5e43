"""kpromoted, RFC v0 (Bharata B Rao, 2025-03-06), exactly as posted.

Sources report ``kpromoted_record_access(pfn, nid, src, now)``; records live in a 65,536-bucket
hash table; one kpromoted thread per node with CPUs wakes every second, walks every bucket
and promotes the records whose ``hot_node`` is its node. Source: mm/kpromoted.c and
include/linux/kpromoted.h in <20250306054532.221138-3-bharata@amd.com>.

The posted window test reads ``(phi->last_update - now) > msecs_to_jiffies(WINDOW)`` in
unsigned long: operands reversed (fixed in v1). Its consequences, which the model keeps
(``TierConfig.kpromoted_as_posted``): a new record is created with frequency 1 and then
passes the "same window" branch, so it holds frequency **2** after its first access, which
already meets KPRMOTED_FREQ_THRESHOLD; any later access at a later jiffy sees a huge
difference, restarts the window and sets frequency back to 1. The LWN article speaks of a
5 ms window; the code's window is 5 s (``5 * MSEC_PER_SEC`` ms); the model takes the window in
ms as a parameter (``TierConfig.freq_window_ms``) and defaults to the code.
"""

from __future__ import annotations

from typing import Any

from spec.numab import migrate_misplaced
from spec.rules import rule
from spec.tier_common import (
    BITS_PER_LONG,
    KPROMOTED_HW_HINTS,
    KPROMOTED_PGTABLE_SCAN,
    NUMA_NO_NODE,
    hash_64,
    ite,
    msecs_to_jiffies,
    ugt,
    ult,
    usub,
)
from spec.tier_state import KRecord, TierError, TierWork

KPROMOTED_HASH_ORDER = 16
KPRMOTED_FREQ_THRESHOLD = 2
#: hot_node for accesses without a node (NUMA_NO_NODE): hard-coded node 1 in v0.
KPROMOTED_NO_NODE_TARGET = 1
KPROMOTE_DELAY_MS = 1000

PROMOTE, RIGHT_NODE, COLD_OLD, COLD_NOT_ACCESSED = 0, 1, 2, 3


@rule("TIER-POL-001", "kpromoted window restart (as posted: operands reversed)",
      "mm/kpromoted.c:kpromoted_record_access @ RFC v0 2025-03-06", variants=("kpromoted-v0",))
def kpromoted_new_window(last_update: Any, now: Any, window_jiffies: Any,
                         as_posted: bool = True) -> Any:
    """
    The window restarts when ``(last_update - now) > window`` in unsigned long arithmetic
    (as posted; ``now - last_update`` after the v1 fix). As posted this is true for every
    access at a jiffy later than ``last_update`` and false only at ``now == last_update``
    (or, for a clock that went backwards, within the window).
    """
    if as_posted:
        return ugt(usub(last_update, now, BITS_PER_LONG), window_jiffies)
    return ugt(usub(now, last_update, BITS_PER_LONG), window_jiffies)


def kpromoted_next(frequency: Any, last_update: Any, now: Any, new_window: Any
                   ) -> tuple[Any, Any]:
    """frequency = 1 and last_update = now on a new window, else frequency + 1."""
    return ite(new_window, 1, frequency + 1), ite(new_window, now, last_update)


@rule("TIER-POL-003", "kpromoted hash bucket",
      "mm/kpromoted.c:kpromoted_record_access (hash_min) @ RFC v0 2025-03-06",
      variants=("kpromoted-v0",))
def kpromoted_bucket(pfn: Any) -> Any:
    """
    A record lives in bucket ``hash_min(pfn, 16)`` = ``hash_64(pfn, 16)`` of a static table of
    65,536 buckets (u64 pfn), added at the head of the bucket's hlist: kpromoted walks the
    buckets in index order and each bucket newest record first.
    """
    return hash_64(pfn, KPROMOTED_HASH_ORDER)


@rule("TIER-OP-001", "kpromoted_record_access",
      "mm/kpromoted.c:kpromoted_record_access @ RFC v0 2025-03-06", variants=("kpromoted-v0",))
def kpromoted_record_access(w: TierWork, pfn: int, nid: int, src: int, now: int) -> int:
    """
    Counts the access (kpromoted_recorded_accesses, _record_hwhints / _record_pgtscans).
    Accesses to a pfn on a top-tier node are dropped (kpromoted_record_toptier); the pfn is
    tested, never the accessing node. Otherwise the pfn's record is found or created
    (frequency 1, last_update = recency = now; kpromoted_record_added / _record_exists),
    the window test TIER-POL-001 restarts the window (frequency 1, last_update = now) or
    increments the frequency, recency = now, and hot_node = nid, or node 1 when nid is
    NUMA_NO_NODE. Returns 0 (the posted function always does). No record is capped or aged.
    """
    w.check_page(pfn)
    w.check_nid(nid)
    cfg = w.config
    w.count("kpromoted_recorded_accesses")
    if src == KPROMOTED_HW_HINTS:
        w.count("kpromoted_record_hwhints")
    elif src == KPROMOTED_PGTABLE_SCAN:
        w.count("kpromoted_record_pgtscans")
    if cfg.toptier(w.node_of[pfn]):
        w.count("kpromoted_record_toptier")
        return 0
    rec = w.records.get(pfn)
    if rec is None:
        rec = KRecord(last_update=now, frequency=1, recency=now, hot_node=0, seq=w.seq)
        w.seq += 1
        w.count("kpromoted_record_added")
    else:
        w.count("kpromoted_record_exists")
    window = msecs_to_jiffies(cfg.window_ms, cfg.hz)
    new = kpromoted_new_window(rec.last_update, now, window, cfg.kpromoted_as_posted)
    freq, last = kpromoted_next(rec.frequency, rec.last_update, now, new)
    hot_node = KPROMOTED_NO_NODE_TARGET if nid == NUMA_NO_NODE else nid
    w.records[pfn] = KRecord(last_update=last, frequency=freq, recency=now, hot_node=hot_node,
                             seq=rec.seq)
    return 0


@rule("TIER-POL-002", "kpromoted promotion test",
      "mm/kpromoted.c:page_should_be_promoted @ RFC v0 2025-03-06", variants=("kpromoted-v0",))
def page_should_be_promoted(folio_nid: Any, hot_node: Any, last_update: Any, frequency: Any,
                            now: Any, window_jiffies: Any) -> Any:
    """
    A record qualifies when the folio is not already on ``hot_node``
    (kpromoted_mig_right_node), the record is not stale, ``now - last_update <= 2 * window``
    (kpromoted_mig_cold_old), and ``frequency >= 2`` (kpromoted_mig_cold_not_accessed).
    Returns PROMOTE (0) or the first failing reason, in that order.
    """
    return ite(folio_nid == hot_node, RIGHT_NODE,
               ite(ugt(usub(now, last_update, BITS_PER_LONG), 2 * window_jiffies), COLD_OLD,
                   ite(ult(frequency, KPRMOTED_FREQ_THRESHOLD), COLD_NOT_ACCESSED, PROMOTE)))


@rule("TIER-OP-002", "kpromoted pass of one node",
      "mm/kpromoted.c:kpromoted_migrate @ RFC v0 2025-03-06", variants=("kpromoted-v0",))
def kpromoted_migrate(w: TierWork, nid: int, now: int) -> list[int]:
    """
    kpromoted%d runs only on nodes with CPUs, once per KPROMOTE_DELAY (1 s). It walks all
    buckets (TIER-POL-003 order) and skips records whose hot_node is not ``nid``. A record
    that passes TIER-POL-002 is a candidate (kpromoted_mig_candidate) and is migrated to
    hot_node one folio at a time; on success the record is deleted (kpromoted_mig_promoted),
    on failure it stays. A record that fails the test is deleted (kpromoted_mig_dropped):
    cold means forgotten; nothing here drives demotion. No rate limit, no threshold
    adaptation. Returns the promoted pfns in order.
    """
    cfg = w.config
    w.check_nid(nid)
    if not cfg.nodes[nid].has_cpu:
        raise TierError(f"node {nid} has no CPUs: no kpromoted thread runs there")
    window = msecs_to_jiffies(cfg.window_ms, cfg.hz)
    order = sorted(w.records.items(), key=lambda kv: (kpromoted_bucket(kv[0]), -kv[1].seq))
    promoted = []
    for pfn, rec in order:
        if rec.hot_node != nid:
            continue
        verdict = page_should_be_promoted(w.node_of[pfn], rec.hot_node, rec.last_update,
                                          rec.frequency, now, window)
        if verdict == PROMOTE:
            w.count("kpromoted_mig_candidate")
            if migrate_misplaced(w, pfn, nid):
                w.count("kpromoted_mig_promoted")
                del w.records[pfn]
                promoted.append(pfn)
        else:
            w.count(("", "kpromoted_mig_right_node", "kpromoted_mig_cold_old",
                     "kpromoted_mig_cold_not_accessed")[verdict])
            w.count("kpromoted_mig_dropped")
            del w.records[pfn]
    return promoted
