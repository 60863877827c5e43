"""Compaction: a migration scanner from the zone start, a free scanner from the end.

The model keeps the kernel's structure at pageblock granularity: the migration scanner walks
pageblocks upward and isolates the LRU pages (``anon``/``file``) of each suitable source
block; the free scanner walks pageblocks downward and isolates free buddies from suitable
target blocks; pages move from low to high pfns; after each source block the local per-CPU
lists are drained so freed sources merge; a direct compactor captures a block of its order as
soon as a migration frees one; the run ends by the finish rules or when the scanners meet.

Simplifications, named: no cached scanner positions between runs, no skip bits, no deferral
(``compaction_deferred``), no fragmentation-index test for costly orders, migration never
fails, and capture is checked after each source block (the kernel checks inside
``__free_one_page``) -- the captured block and the free remainder are the same.
"""

from __future__ import annotations

import attrs

from spec.buddy import account_freepages, add_to_free_list, del_from_free_list_raw
from spec.constants import (
    ALLOC_CMA,
    ALLOC_WMARK_MASK,
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    migratetype_is_mergeable,
)
from spec.fallback import find_suitable_fallback
from spec.pcp import drain_pages_zone
from spec.rules import rule
from spec.vmscan import LRU_KINDS, MemWork, Page, compact_gap, free_block
from spec.watermark import zone_watermark_ok
from spec.zone import Allocation, Work

# enum compact_result (include/linux/compaction.h)
COMPACT_NOT_SUITABLE_ZONE = "COMPACT_NOT_SUITABLE_ZONE"
COMPACT_SKIPPED = "COMPACT_SKIPPED"
COMPACT_DEFERRED = "COMPACT_DEFERRED"
COMPACT_NO_SUITABLE_PAGE = "COMPACT_NO_SUITABLE_PAGE"
COMPACT_CONTINUE = "COMPACT_CONTINUE"
COMPACT_COMPLETE = "COMPACT_COMPLETE"
COMPACT_PARTIAL_SKIPPED = "COMPACT_PARTIAL_SKIPPED"
COMPACT_CONTENDED = "COMPACT_CONTENDED"
COMPACT_SUCCESS = "COMPACT_SUCCESS"

# enum compact_priority
COMPACT_PRIO_SYNC_FULL = 0
MIN_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_FULL
COMPACT_PRIO_SYNC_LIGHT = 1
MIN_COMPACT_COSTLY_PRIORITY = COMPACT_PRIO_SYNC_LIGHT
DEF_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_LIGHT
COMPACT_PRIO_ASYNC = 2
INIT_COMPACT_PRIORITY = COMPACT_PRIO_ASYNC

MIGRATE_ASYNC = "MIGRATE_ASYNC"
MIGRATE_SYNC_LIGHT = "MIGRATE_SYNC_LIGHT"
MIGRATE_SYNC = "MIGRATE_SYNC"


@attrs.define
class CompactControl:
    """``struct compact_control`` (the fields the model uses)."""

    order: int
    migratetype: int
    alloc_flags: int
    mode: str
    direct_compaction: bool
    ignore_block_suitable: bool = False
    capture: bool = False
    captured: int | None = None
    migrate_scanned: int = 0
    free_scanned: int = 0


@rule("ALLOC-POL-052", "Enough free base pages to compact",
      "mm/compaction.c:__compaction_suitable,compaction_suitable @ v6.18")
def compaction_suitable(w: Work, order: int, watermark: int, free_pages: int) -> bool:
    """
    Compaction needs free base pages to migrate into: the zone must pass
    ``__zone_watermark_ok`` at order 0 against ``watermark + compact_gap(order)`` (twice the
    request) with ALLOC_CMA, counting ``free_pages``. Since 6.15 ("push watermark into
    compaction_suitable() callers") the caller passes the watermark: the min mark for the
    allocator, the high mark for kcompactd. (The costly-order fragmentation-index test is not
    modelled.)
    """
    return zone_watermark_ok(w, 0, watermark + compact_gap(order), ALLOC_CMA, free_pages)


@rule("ALLOC-POL-053", "Whether compaction should run for an allocation",
      "mm/compaction.c:compaction_suit_allocation_order @ v6.18")
def compaction_suit_allocation_order(mw: MemWork, order: int, alloc_flags: int,
                                     kcompactd: bool) -> str:
    """
    COMPACT_SUCCESS if the zone already passes the allocation's own watermark at ``order``
    (``wmark_pages(alloc_flags & ALLOC_WMARK_MASK)``); for kcompactd under defrag_mode with
    the series' watermark patch, success means the **high** mark is met in
    NR_FREE_PAGES_BLOCKS instead. Otherwise COMPACT_SKIPPED unless ``compaction_suitable``
    holds at the min mark (for that kcompactd: at the high mark), else COMPACT_CONTINUE.
    """
    w = mw.w
    blocks_goal = kcompactd and mw.defrag_mode and mw.has("pageblock_watermarks")
    if blocks_goal:
        if zone_watermark_ok(w, order, w.wmark_pages(WMARK_HIGH), alloc_flags,
                             w.nr_free_pages_blocks):
            return COMPACT_SUCCESS
    elif zone_watermark_ok(w, order, w.wmark_pages(alloc_flags & ALLOC_WMARK_MASK),
                           alloc_flags, w.nr_free_pages):
        return COMPACT_SUCCESS
    mark = w.wmark_pages(WMARK_HIGH if blocks_goal else WMARK_MIN)
    if not compaction_suitable(w, order, mark, w.nr_free_pages):
        return COMPACT_SKIPPED
    return COMPACT_CONTINUE


@rule("ALLOC-POL-054", "When compaction is finished",
      "mm/compaction.c:__compact_finished @ v6.18")
def compact_finished(mw: MemWork, cc: CompactControl, migrate_block: int,
                     free_block: int) -> str:
    """
    COMPACT_COMPLETE when the scanners met. A captured block is success. kcompactd under
    defrag_mode (with the series' watermark patch) succeeds only when the high watermark is
    met in NR_FREE_PAGES_BLOCKS, and otherwise continues. Else, from the request's order up:
    success if its migratetype's list is non-empty, or any block of pageblock order or more
    is free, or a fallback could claim a block at that order (``find_suitable_fallback``
    with claiming), which for a non-MOVABLE request counts only at a pageblock boundary (the
    model's scanner is always at one). Otherwise COMPACT_CONTINUE.
    """
    w = mw.w
    if migrate_block >= free_block:
        return COMPACT_COMPLETE
    if cc.captured is not None:
        return COMPACT_SUCCESS
    if not cc.direct_compaction and mw.defrag_mode and mw.has("pageblock_watermarks"):
        if zone_watermark_ok(w, cc.order, w.wmark_pages(WMARK_HIGH), cc.alloc_flags,
                             w.nr_free_pages_blocks):
            return COMPACT_SUCCESS
        return COMPACT_CONTINUE
    cfg = w.config
    for order in range(cc.order, cfg.nr_page_orders):
        if w.free_area[order][cc.migratetype]:
            return COMPACT_SUCCESS
        if order >= cfg.pageblock_order and w.nr_free[order]:
            return COMPACT_SUCCESS
        if cc.migratetype < 3 and find_suitable_fallback(w, order, cc.migratetype, True) >= 0:
            return COMPACT_SUCCESS
    return COMPACT_CONTINUE


def suitable_migration_source(w: Work, cc: CompactControl, pb: int) -> bool:
    """Async direct compaction only scans blocks of the request's kind (movable or same type)."""
    if cc.mode != MIGRATE_ASYNC or not cc.direct_compaction:
        return True
    mt = w.pageblock_migratetype[pb]
    if cc.migratetype == MIGRATE_MOVABLE:
        return mt in (MIGRATE_MOVABLE, MIGRATE_CMA)
    return mt == cc.migratetype


def suitable_migration_target(w: Work, cc: CompactControl, pb: int) -> bool:
    """Free targets come from MOVABLE (or CMA) blocks that are not one whole free buddy."""
    cfg = w.config
    start = cfg.zone_start_pfn + (pb << cfg.pageblock_order)
    entry = w.buddy.get(start)
    if entry is not None and entry[0] >= cfg.pageblock_order:
        return False
    if w.pageblock_isolate[pb]:
        return False
    if cc.ignore_block_suitable:
        return True
    return w.pageblock_migratetype[pb] in (MIGRATE_MOVABLE, MIGRATE_CMA)


def isolate_free_page(w: Work, pfn: int, order: int) -> bool:
    """``__isolate_free_page``: min watermark + the block at order 0, then unlink it; a block
    of at least half a pageblock turns its mergeable pageblocks MOVABLE."""
    cfg = w.config
    mark = w.watermark[WMARK_MIN] + (1 << order)
    if not zone_watermark_ok(w, 0, mark, ALLOC_CMA, w.nr_free_pages):
        return False
    mt = w.buddy[pfn][1]
    del_from_free_list_raw(w, pfn, order, mt)
    account_freepages(w, -(1 << order), mt)
    if order >= cfg.pageblock_order - 1:
        end = pfn + (1 << order)
        p = pfn & ~(cfg.pageblock_nr_pages - 1)
        while p < end:
            if migratetype_is_mergeable(w.get_pfnblock_migratetype(p)):
                w.set_pageblock_migratetype(p, MIGRATE_MOVABLE)
            p += cfg.pageblock_nr_pages
    return True


def _take_subblock(w: Work, pfn: int, order: int, want: int, want_order: int) -> None:
    """Unlink the free buddy (pfn, order) and give back all of it but (want, want_order)."""
    mt = w.buddy[pfn][1]
    del_from_free_list_raw(w, pfn, order, mt)
    account_freepages(w, -(1 << order), mt)
    while order > want_order:
        order -= 1
        half = pfn + (1 << order)
        if want >= half:
            other, pfn = pfn, half
        else:
            other = half
        add_to_free_list(w, other, order, w.get_pfnblock_migratetype(other), tail=False)
        account_freepages(w, 1 << order, w.get_pfnblock_migratetype(other))


def _try_capture(mw: MemWork, cc: CompactControl, freed: list[int]) -> None:
    """``compaction_capture``: a freed source merged into a block of the compactor's order."""
    w = mw.w
    cfg = w.config
    for src in freed:
        for bpfn, (border, bmt) in list(w.buddy.items()):
            if not (bpfn <= src < bpfn + (1 << border)) or border < cc.order:
                continue
            if bmt in (MIGRATE_CMA, MIGRATE_ISOLATE) or bmt >= 3 and bmt != MIGRATE_MOVABLE:
                break
            if (bmt == MIGRATE_MOVABLE and cc.order < cfg.pageblock_order
                    and cc.migratetype != MIGRATE_MOVABLE):
                break
            want = src & ~((1 << cc.order) - 1)
            _take_subblock(w, bpfn, border, want, cc.order)
            w.allocated[want] = Allocation(want, cc.order, cc.migratetype)
            cc.captured = want
            mw.stats["compact_capture"] += 1
            if bmt != cc.migratetype:
                mw.stats["compact_capture_pollute"] += 1
            return


@rule("ALLOC-OP-053", "compact_zone: two scanners, migration, capture",
      "mm/compaction.c:compact_zone,isolate_migratepages,isolate_freepages,"
      "compaction_alloc; mm/page_alloc.c:compaction_capture @ v6.18")
def compact_zone(mw: MemWork, cc: CompactControl) -> str:
    """
    The run starts only if ALLOC-POL-053 says COMPACT_CONTINUE. The migration scanner visits
    pageblocks from the zone start upward (async direct compaction: only blocks of the
    request's mobility), the free scanner pageblocks from the zone end downward (MOVABLE
    blocks that are not whole free buddies, any block at the highest priority). For each
    source block, its ``anon``/``file`` blocks are migrated in pfn order, each to the lowest
    isolated free block that fits (``compaction_alloc``: smallest order first, split, rest
    kept), isolating more free pages when needed (``__isolate_free_page`` keeps the min
    watermark); the page keeps its kind and age; the source is freed. The local per-CPU
    lists are then drained, a direct compactor captures a freed block of its order, and the
    finish rules (ALLOC-POL-054) decide. Scanners meeting end the run (COMPACT_COMPLETE);
    leftover isolated free pages go back to the buddy. Scanned pages count in
    ``compact_migrate_scanned``/``compact_free_scanned``, moves in ``compact_isolated``
    and ``pgmigrate_success``.
    """
    w = mw.w
    cfg = w.config
    ret = compaction_suit_allocation_order(mw, cc.order, cc.alloc_flags,
                                           not cc.direct_compaction)
    if ret != COMPACT_CONTINUE:
        return ret
    nr_blocks = cfg.nr_pageblocks
    pbn = cfg.pageblock_nr_pages
    free_pb = nr_blocks
    migrate_block = 0
    pool: list[tuple[int, int]] = []  # isolated free blocks (pfn, order)
    ret = COMPACT_CONTINUE

    def isolate_more() -> bool:
        nonlocal free_pb
        while free_pb - 1 > migrate_block:
            free_pb -= 1
            if not suitable_migration_target(w, cc, free_pb):
                continue
            start = cfg.zone_start_pfn + free_pb * pbn
            cc.free_scanned += pbn
            got = False
            for pfn in range(start, start + pbn):
                entry = w.buddy.get(pfn)
                if entry is None or w.get_pfnblock_migratetype(pfn) == MIGRATE_ISOLATE:
                    continue
                if isolate_free_page(w, pfn, entry[0]):
                    pool.append((pfn, entry[0]))
                    got = True
            if got:
                return True
        return False

    def compaction_alloc(order: int) -> int | None:
        while True:
            fits = sorted((o, p) for p, o in pool if o >= order)
            if fits:
                o, p = fits[0]
                pool.remove((p, o))
                while o > order:
                    o -= 1
                    pool.append((p + (1 << o), o))
                return p
            if not isolate_more():
                return None

    while True:
        ret = compact_finished(mw, cc, migrate_block, free_pb)
        if ret != COMPACT_CONTINUE:
            break
        pb = migrate_block
        migrate_block += 1
        if not suitable_migration_source(w, cc, pb):
            continue
        start = cfg.zone_start_pfn + pb * pbn
        cc.migrate_scanned += pbn
        movable = sorted(p for p in mw.pages.values()
                         if start <= p.pfn < start + pbn and p.kind in LRU_KINDS)
        freed: list[int] = []
        for page in movable:
            target = compaction_alloc(page.order)
            if target is None or target < page.pfn:
                if target is not None:
                    pool.append((target, page.order))
                break
            w.allocated[target] = Allocation(target, page.order,
                                             w.allocated[page.pfn].migratetype)
            del mw.pages[page.pfn]
            mw.pages[target] = Page(target, page.order, page.kind, page.age)
            free_block(w, page.pfn, page.order, 0)
            freed.append(page.pfn)
            mw.stats["compact_isolated"] += 2 << page.order
            mw.stats["pgmigrate_success"] += 1 << page.order
        if freed:
            drain_pages_zone(w, 0)
            if cc.capture:
                _try_capture(mw, cc, freed)
    for pfn, order in pool:
        _release_free(w, pfn, order)
    return ret


def _release_free(w: Work, pfn: int, order: int) -> None:
    """``release_free_list``: isolated but unused free pages go back to the buddy."""
    from spec.buddy import split_large_buddy

    split_large_buddy(w, pfn, order)


def compact_mode(priority: int) -> str:
    return MIGRATE_ASYNC if priority == COMPACT_PRIO_ASYNC else (
        MIGRATE_SYNC if priority == COMPACT_PRIO_SYNC_FULL else MIGRATE_SYNC_LIGHT)


@rule("ALLOC-OP-054", "Direct compaction",
      "mm/page_alloc.c:__alloc_pages_direct_compact; mm/compaction.c:try_to_compact_pages,"
      "compact_zone_order @ v6.18")
def try_to_compact_pages(mw: MemWork, order: int, migratetype: int, alloc_flags: int,
                         priority: int) -> tuple[str, int | None]:
    """
    Order 0 never compacts. Otherwise one ``compact_zone`` run as a direct compactor with
    capture, in the mode the priority selects (ASYNC, SYNC_LIGHT, SYNC_FULL; the highest
    priority also ignores block suitability), counted as a ``compact_stall``. Returns the
    result and the captured block; the caller counts ``compact_success``/``compact_fail``.
    """
    if order == 0:
        return COMPACT_SKIPPED, None
    cc = CompactControl(order, migratetype, alloc_flags, compact_mode(priority), True,
                        ignore_block_suitable=priority == MIN_COMPACT_PRIORITY, capture=True)
    mw.stats["compact_stall"] += 1
    ret = compact_zone(mw, cc)
    mw.stats["compact_migrate_scanned"] += cc.migrate_scanned
    mw.stats["compact_free_scanned"] += cc.free_scanned
    return ret, cc.captured


@rule("ALLOC-OP-055", "kcompactd",
      "mm/compaction.c:kcompactd_do_work @ v6.18")
def kcompactd_do_work(mw: MemWork) -> None:
    """
    A woken kcompactd compacts the zone for its pending order in MIGRATE_SYNC_LIGHT mode, not
    as a direct compactor (no capture), with ALLOC_WMARK_MIN; under defrag_mode with the
    series' watermark patch its goals are whole free pageblocks at the high watermark
    (ALLOC-POL-053, ALLOC-POL-054). Its scanning counts in ``compact_daemon_migrate_scanned``
    and ``compact_daemon_free_scanned``. It then sleeps.
    """
    if mw.kcompactd_order < 0:
        return
    order = mw.kcompactd_order
    mw.kcompactd_order = -1
    flags = WMARK_MIN
    cc = CompactControl(order, MIGRATE_MOVABLE, flags, MIGRATE_SYNC_LIGHT, False)
    mw.stats["compact_daemon_wake"] += 1
    compact_zone(mw, cc)
    mw.stats["compact_daemon_migrate_scanned"] += cc.migrate_scanned
    mw.stats["compact_daemon_free_scanned"] += cc.free_scanned


__all__ = ["compact_zone", "try_to_compact_pages", "kcompactd_do_work", "compaction_suitable",
           "compaction_suit_allocation_order", "compact_finished", "CompactControl",
           "COMPACT_SKIPPED", "COMPACT_SUCCESS", "COMPACT_COMPLETE", "COMPACT_CONTINUE",
           "PAGE_ALLOC_COSTLY_ORDER", "WMARK_LOW"]
