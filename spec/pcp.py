"""Per-CPU page lists: refill in batches, free to the head, drain from the tail.

The sizing dynamics (``alloc_factor``, ``free_count``, the auto-tuned ``high``) follow
mm/page_alloc.c as of 6.12.117, which 6.18 keeps for the sequential paths modelled here
(6.18 adds the FPI_TRYLOCK early return of ``free_frozen_page_commit``, modelled with the
nolock API). The vmstat worker's ``decay_pcp_high`` is time-driven and not modelled.
"""

from __future__ import annotations

from typing import Any

from spec.buddy import FPI_NONE, free_one_page_locked
from spec.constants import PAGE_ALLOC_COSTLY_ORDER, PCP_BATCH_SCALE_MAX, WMARK_HIGH
from spec.fallback import RMQUEUE_NORMAL, rmqueue
from spec.rules import rule
from spec.watermark import INT, zone_watermark_ok
from spec.zone import (
    PCPF_FREE_HIGH_BATCH,
    PCPF_PREV_FREE_HIGH_ORDER,
    ZONE_BELOW_HIGH,
    ZONE_RECLAIM_ACTIVE,
    Work,
    _WorkPcp,
)


def _clamp(v: int, lo: int, hi: int) -> int:
    """The kernel's ``clamp(v, lo, hi)`` = ``min(max(v, lo), hi)``, also when lo > hi."""
    return min(max(v, lo), hi)


@rule("ALLOC-POL-040", "How many pages a per-CPU refill takes",
      "mm/page_alloc.c:nr_pcp_alloc @ v6.12.117")
def nr_pcp_alloc(w: Work, pcp: _WorkPcp, order: int) -> int:
    """
    ``high`` is first clamped into [high_min, high_max]; a disabled or boot pageset
    (high < batch) refills one page. Order 0 takes ``batch << alloc_factor``; while the zone
    is not below its high watermark and high_min != high_max, ``high`` grows by that batch up
    to high_max. Order 0 is capped at ``max(high - count - batch, batch)`` and, if the batch
    fitted, ``alloc_factor`` grows (up to PCP_BATCH_SCALE_MAX). A batch above 1 is scaled to
    ``max(batch >> order, 2)``.
    """
    base_batch = pcp.batch
    high = pcp.high = _clamp(pcp.high, pcp.high_min, pcp.high_max)
    if high < base_batch:
        return 1
    batch = base_batch if order else base_batch << pcp.alloc_factor
    if pcp.high_min != pcp.high_max and ZONE_BELOW_HIGH not in w.flags:
        high = pcp.high = min(high + batch, pcp.high_max)
    if not order:
        max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
        if batch <= max_nr_alloc and pcp.alloc_factor < PCP_BATCH_SCALE_MAX:
            pcp.alloc_factor += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@rule("ALLOC-OP-020", "Refilling a per-CPU list",
      "mm/page_alloc.c:rmqueue_bulk @ v6.18")
def rmqueue_bulk(w: Work, order: int, count: int, pcp: _WorkPcp, pindex: int,
                 migratetype: int, alloc_flags: int) -> int:
    """
    Under one zone->lock hold, take up to ``count`` blocks with ``__rmqueue`` (one mode kept
    across the batch) and append each to the **tail** of the per-CPU list, so the list is in
    the order the buddy handed them out. Returns the number taken.
    """
    mode = [RMQUEUE_NORMAL]
    lst = pcp.lists[pindex]
    taken = 0
    for _ in range(count):
        pfn = rmqueue(w, order, migratetype, alloc_flags, mode)
        if pfn is None:
            break
        lst.append(pfn)
        taken += 1
    return taken


@rule("ALLOC-OP-021", "Allocating from a per-CPU list",
      "mm/page_alloc.c:rmqueue_pcplist,__rmqueue_pcplist @ v6.18")
def rmqueue_pcplist(w: Work, cpu: int, order: int, migratetype: int,
                    alloc_flags: int) -> int | None:
    """
    ``free_count`` halves (an allocation damps batch freeing); if the list for
    (migratetype, order) is empty it is refilled with ``nr_pcp_alloc`` blocks; the **head**
    is returned and ``count`` drops by ``1 << order``. None if the refill found nothing.
    """
    cfg = w.config
    pcp = w.pcp[cpu]
    pcp.free_count >>= 1
    pindex = cfg.order_to_pindex(migratetype, order)
    lst = pcp.lists[pindex]
    if not lst:
        batch = nr_pcp_alloc(w, pcp, order)
        alloced = rmqueue_bulk(w, order, batch, pcp, pindex, migratetype, alloc_flags)
        pcp.count += alloced << order
        if not lst:
            return None
    pfn = lst.pop(0)
    pcp.count -= 1 << order
    return pfn


@rule("ALLOC-POL-041", "The effective per-CPU high mark on free",
      "mm/page_alloc.c:nr_pcp_high @ v6.12.117")
def nr_pcp_high(w: Work, pcp: _WorkPcp, batch: int, free_high: bool) -> int:
    """
    ``high`` is clamped into [high_min, high_max]; 0 disables. After a high-order free burst
    (``free_high``) high shrinks by ``batch << PCP_BATCH_SCALE_MAX`` (not below high_min) and 0
    is returned (drain now). Under reclaim, high shrinks by ``max(free_count, batch)`` and at
    most ``batch * 4`` pages stay. With a fixed high, that is the answer. When the zone is
    below its high watermark, high shrinks likewise and the answer is ``max(count,
    high_min)``; otherwise, when ``count >= high``, high grows to hold ``free_count + batch``.
    """
    high = pcp.high = _clamp(pcp.high, pcp.high_min, pcp.high_max)
    if not high:
        return 0
    if free_high:
        pcp.high = max(high - (batch << PCP_BATCH_SCALE_MAX), pcp.high_min)
        return 0
    if ZONE_RECLAIM_ACTIVE in w.flags:
        free_count = max(pcp.free_count, batch)
        pcp.high = max(high - free_count, pcp.high_min)
        return min(batch << 2, pcp.high)
    if pcp.high_min == pcp.high_max:
        return high
    if ZONE_BELOW_HIGH in w.flags:
        free_count = max(pcp.free_count, batch)
        pcp.high = max(high - free_count, pcp.high_min)
        high = max(pcp.count, pcp.high_min)
    elif pcp.count >= high:
        need_high = pcp.free_count + batch
        if pcp.high < need_high:
            pcp.high = _clamp(need_high, pcp.high_min, pcp.high_max)
    return high


@rule("ALLOC-POL-042", "How many pages a per-CPU drain frees",
      "mm/page_alloc.c:nr_pcp_free @ v6.12.117")
def nr_pcp_free(pcp: _WorkPcp, batch: int, high: int, free_high: bool) -> int:
    """
    After a high-order burst, as much as ``min(count, batch << PCP_BATCH_SCALE_MAX)``; with a
    disabled pageset (high < batch) one page; else ``free_count`` clamped into
    [batch, high - batch], which leaves at least ``batch`` pages on the lists.
    """
    return int(nr_pcp_free_pages(pcp.count, pcp.free_count, batch, high, free_high))


def nr_pcp_free_pages(count: Any, free_count: Any, batch: Any, high: Any, free_high: Any,
                      ops: Any = INT) -> Any:
    """ALLOC-POL-042's arithmetic on the per-CPU counters (ints or Z3 bit-vectors)."""
    # clamp_t(int, free_count, batch, high - batch) = min(max(v, lo), hi)
    clamped = ops.min(ops.max(free_count, batch), high - batch)
    return ops.ite(free_high, ops.min(count, batch << PCP_BATCH_SCALE_MAX),
                   ops.ite(high < batch, 1, clamped))


@rule("ALLOC-OP-022", "Draining per-CPU pages to the buddy lists",
      "mm/page_alloc.c:free_pcppages_bulk @ v6.18")
def free_pcppages_bulk(w: Work, cpu: int, count: int, pindex: int) -> None:
    """
    Free ``min(count, pcp->count)`` pages: round-robin over the non-empty lists starting with
    ``pindex``; from each list take blocks from the **tail** (coldest), each freed with
    ``__free_one_page`` under the **current** type of its pageblock, until the count is used
    up or the list is empty, then move to the next list.
    """
    cfg = w.config
    pcp = w.pcp[cpu]
    count = min(pcp.count, count)
    pindex = pindex - 1
    while count > 0:
        while True:
            pindex += 1
            if pindex > cfg.nr_pcp_lists - 1:
                pindex = 0
            if pcp.lists[pindex]:
                break
        lst = pcp.lists[pindex]
        order = cfg.pindex_to_order(pindex)
        nr_pages = 1 << order
        while True:
            pfn = lst.pop()
            mt = w.get_pfnblock_migratetype(pfn)
            count -= nr_pages
            pcp.count -= nr_pages
            free_one_page_locked(w, pfn, order, mt, FPI_NONE)
            if not (count > 0 and lst):
                break


@rule("ALLOC-OP-023", "Freeing to a per-CPU list",
      "mm/page_alloc.c:free_frozen_page_commit @ v6.18")
def free_pcp_commit(w: Work, cpu: int, pfn: int, order: int, migratetype: int) -> None:
    """
    ``alloc_factor`` halves; the block goes on the **head** of its list and ``count`` grows.
    A repeated order 1..3 free with ``free_count >= batch + high_min / 2`` marks a high-order
    burst (``free_high``); in the variants before 6.16 (v6.14 to v6.15) the threshold is
    ``batch``, as before 6.16's "mm: pcp: increase pcp->free_count threshold to trigger
    free_high". ``free_count`` grows
    by ``1 << order`` while below ``batch << PCP_BATCH_SCALE_MAX``. If ``count`` then reaches
    ``nr_pcp_high``, ``nr_pcp_free`` pages are drained starting with this list, and
    ZONE_BELOW_HIGH is cleared once the zone is back above its high watermark.
    """
    cfg = w.config
    pcp = w.pcp[cpu]
    pcp.alloc_factor >>= 1
    pindex = cfg.order_to_pindex(migratetype, order)
    pcp.lists[pindex].insert(0, pfn)
    pcp.count += 1 << order
    batch = pcp.batch
    free_high = False
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:
        threshold = batch + pcp.high_min // 2 if cfg.free_high_min else batch
        free_high = (pcp.free_count >= threshold
                     and bool(pcp.flags & PCPF_PREV_FREE_HIGH_ORDER)
                     and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch))
        pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
    elif pcp.flags & PCPF_PREV_FREE_HIGH_ORDER:
        pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
    if pcp.free_count < (batch << PCP_BATCH_SCALE_MAX):
        pcp.free_count += 1 << order
    high = nr_pcp_high(w, pcp, batch, free_high)
    if pcp.count >= high:
        free_pcppages_bulk(w, cpu, nr_pcp_free(pcp, batch, high, free_high), pindex)
        if ZONE_BELOW_HIGH in w.flags and zone_watermark_ok(
                w, 0, w.wmark_pages(WMARK_HIGH), 0, w.nr_free_pages):
            w.flags.discard(ZONE_BELOW_HIGH)


@rule("ALLOC-OP-024", "Draining one CPU's lists",
      "mm/page_alloc.c:drain_pages_zone @ v6.18")
def drain_pages_zone(w: Work, cpu: int) -> None:
    """
    Free every page on the CPU's lists to the buddy, in chunks of at most
    ``batch << PCP_BATCH_SCALE_MAX`` pages, each chunk a ``free_pcppages_bulk`` from pindex 0.
    """
    pcp = w.pcp[cpu]
    while pcp.count:
        to_drain = min(pcp.count, pcp.batch << PCP_BATCH_SCALE_MAX)
        free_pcppages_bulk(w, cpu, to_drain, 0)
