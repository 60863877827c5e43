"""The public operations of the ALLOC core: ``op(zone, args) -> (zone', result)``.

``alloc_pages`` models ``__alloc_pages_noprof`` up to the slow path's first freelist attempt:
the fast path (``ALLOC_WMARK_LOW`` plus ``alloc_flags_nofragment``) and then one attempt with
``gfp_to_alloc_flags``. Reclaim, compaction, reserve escalation and the retry loop are the
subject of the reliable-huge-page work and slot in after that attempt; until then, where the
kernel would reclaim or compact, the model returns None. Waking kswapd is recorded only
through the flags it clears (ZONE_BOOSTED_WATERMARK).
"""

from __future__ import annotations

from spec.buddy import (
    FPI_SKIP_REPORT_NOTIFY,
    FPI_TO_TAIL,
    del_from_free_list_raw,
    find_buddy_pfn,
    free_one_page_locked,
    move_freepages_block_isolate,
    page_is_buddy,
    rmqueue_smallest,
    split_large_buddy,
)
from spec.constants import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    WMARK_HIGH,
    WMARK_LOW,
    alloc_flags_nofragment,
    gfp_migratetype,
    gfp_to_alloc_flags,
)
from spec.fallback import (
    RMQUEUE_NORMAL,
    reserve_highatomic_pageblock,
    rmqueue,
)
from spec.fallback import (
    unreserve_highatomic_pageblock as _unreserve,
)
from spec.pcp import drain_pages_zone, free_pcp_commit, rmqueue_pcplist
from spec.rules import alloc_base_variant, rule
from spec.watermark import pcp_batch_high, zone_watermark_fast, zone_wmarks
from spec.zone import (
    PCPF_FREE_HIGH_BATCH,
    ZONE_BELOW_HIGH,
    ZONE_BOOSTED_WATERMARK,
    Allocation,
    PerCpuPages,
    SpecError,
    Work,
    Zone,
    ZoneConfig,
)


def _pcp_init(cfg: ZoneConfig, low_wmark: int) -> tuple[int, int, int]:
    return pcp_batch_high(cfg.managed_pages, low_wmark, cfg.nr_cpus,
                          cfg.percpu_pagelist_high_fraction)


@rule("ALLOC-OP-030", "The zone at boot",
      "mm/mm_init.c:memmap_init,memblock_free_pages; mm/page_alloc.c:__free_pages_core @ v6.18")
def init_zone(cfg: ZoneConfig) -> Zone:
    """
    Every pageblock starts with its configured type (MOVABLE unless configured otherwise,
    as ``memmap_init`` leaves them) and every page is free: the zone is handed to the
    allocator in the largest aligned chunks, in pfn order, each freed to the **tail**
    (FPI_TO_TAIL) pageblock by pageblock with its own type (``split_large_buddy``), merging as
    ALLOC-OP-002 says, so a mergeable block freed next to a free block of another mergeable
    type gives it its own type: configured UNMOVABLE/RECLAIMABLE/MOVABLE types survive only
    where the merge rules keep them, HIGHATOMIC and CMA always do. With mobility grouping
    disabled (a zone of fewer than MIGRATE_TYPES pageblocks) the pcp types are stored as
    UNMOVABLE, as ``set_pageblock_migratetype`` does. Watermarks follow
    ALLOC-POL-010, per-CPU bounds ALLOC-POL-011 with ``high`` 0 until first use, the
    highatomic reserve counts the HIGHATOMIC blocks configured at boot.
    """
    types = cfg.pageblock_types or (MIGRATE_MOVABLE,) * cfg.nr_pageblocks
    if cfg.page_group_by_mobility_disabled:
        types = tuple(0 if mt < MIGRATE_PCPTYPES else mt for mt in types)
    nr_orders = cfg.nr_page_orders
    wm = zone_wmarks(cfg)
    batch, high_min, high_max = _pcp_init(cfg, wm[WMARK_LOW])
    empty_lists = tuple(() for _ in range(cfg.nr_pcp_lists))
    pcp = tuple(PerCpuPages(empty_lists, 0, 0, high_min, high_max, batch,
                            flags=PCPF_FREE_HIGH_BATCH if cfg.pcp_free_high_batch else 0)
                for _ in range(cfg.nr_cpus))
    empty = Zone(
        config=cfg,
        pageblock_migratetype=tuple(types),
        pageblock_isolate=(False,) * cfg.nr_pageblocks,
        free_area=tuple(tuple(() for _ in range(MIGRATE_TYPES)) for _ in range(nr_orders)),
        nr_free=(0,) * nr_orders,
        nr_free_pages=0,
        nr_free_pages_blocks=0,
        nr_free_cma_pages=0,
        nr_free_highatomic=0,
        nr_reserved_highatomic=types.count(MIGRATE_HIGHATOMIC) * cfg.pageblock_nr_pages,
        watermark=wm,
        watermark_boost=0,
        flags=frozenset(),
        pcp=pcp,
        allocated=frozenset(),
    )
    w = Work(empty)
    pfn = cfg.zone_start_pfn
    while pfn < cfg.end_pfn:
        order = cfg.max_page_order
        while pfn & ((1 << order) - 1) or pfn + (1 << order) > cfg.end_pfn:
            order -= 1
        split_large_buddy(w, pfn, order, FPI_TO_TAIL)
        pfn += 1 << order
    return w.freeze()


def _check_cpu(w: Work, cpu: int) -> None:
    if not 0 <= cpu < w.config.nr_cpus:
        raise SpecError(f"cpu {cpu} outside 0..{w.config.nr_cpus - 1}")


@rule("ALLOC-OP-031", "Allocating from the zone: per-CPU list or buddy",
      "mm/page_alloc.c:rmqueue,rmqueue_buddy @ v6.18")
def rmqueue_zone(w: Work, cpu: int, order: int, alloc_flags: int, migratetype: int) -> int | None:
    """
    Per-CPU orders go through the CPU's list (ALLOC-OP-021); if that yields nothing, or for
    other orders, the buddy is asked under zone->lock: with ALLOC_HIGHATOMIC the HIGHATOMIC
    lists first; then ``__rmqueue`` from mode NORMAL; if that fails and the request has
    ALLOC_OOM or ALLOC_NON_BLOCK, the HIGHATOMIC lists (failing now is worse than failing a
    high-order atomic later). Afterwards, whether or not a page was found, an ALLOC_KSWAPD
    request clears ZONE_BOOSTED_WATERMARK (and wakes kswapd).
    """
    page = None
    if w.config.pcp_allowed_order(order):
        page = rmqueue_pcplist(w, cpu, order, migratetype, alloc_flags)
    if page is None:
        if alloc_flags & ALLOC_HIGHATOMIC:
            page = rmqueue_smallest(w, order, MIGRATE_HIGHATOMIC)
        if page is None:
            page = rmqueue(w, order, migratetype, alloc_flags, [RMQUEUE_NORMAL])
            if page is None and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                page = rmqueue_smallest(w, order, MIGRATE_HIGHATOMIC)
    if alloc_flags & ALLOC_KSWAPD and ZONE_BOOSTED_WATERMARK in w.flags:
        w.flags.discard(ZONE_BOOSTED_WATERMARK)
    return page


@rule("ALLOC-OP-032", "get_page_from_freelist",
      "mm/page_alloc.c:get_page_from_freelist @ v6.18")
def get_page_from_freelist_work(w: Work, gfp: int, order: int, alloc_flags: int,
                                cpu: int) -> int | None:
    """
    Unless ZONE_BELOW_HIGH is set, test the **high** watermark first; passing allocates,
    failing sets ZONE_BELOW_HIGH. Then test the watermark ``alloc_flags`` selects (min, low or
    high, each with the boost); ALLOC_NO_WATERMARKS ignores a failure; otherwise the zone is
    skipped. On success, an ALLOC_HIGHATOMIC request reserves the page's pageblock
    (ALLOC-OP-014). When nothing was found and ALLOC_NOFRAGMENT was set, the scan is repeated
    once without it, **except under defrag_mode**, which never drops it here.
    """
    migratetype = gfp_migratetype(gfp, w.config.page_group_by_mobility_disabled)
    while True:
        no_fallback = alloc_flags & ALLOC_NOFRAGMENT
        passed = False
        if ZONE_BELOW_HIGH not in w.flags:
            if zone_watermark_fast(w, order, w.wmark_pages(WMARK_HIGH), alloc_flags):
                passed = True
            else:
                w.flags.add(ZONE_BELOW_HIGH)
        if not passed:
            mark = w.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
            passed = (zone_watermark_fast(w, order, mark, alloc_flags)
                      or bool(alloc_flags & ALLOC_NO_WATERMARKS))
        if passed:
            page = rmqueue_zone(w, cpu, order, alloc_flags, migratetype)
            if page is not None:
                w.allocated[page] = Allocation(page, order, migratetype)
                if alloc_flags & ALLOC_HIGHATOMIC:
                    reserve_highatomic_pageblock(w, page, order)
                return page
        if no_fallback and not w.config.defrag_mode:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            continue
        return None


def get_page_from_freelist(z: Zone, gfp: int, order: int, alloc_flags: int,
                           cpu: int = 0) -> tuple[Zone, int | None]:
    """One freelist attempt with explicit ``alloc_flags`` (what the slow path will call)."""
    w = Work(z)
    _check_cpu(w, cpu)
    if not 0 <= order <= w.config.max_page_order:
        return z, None
    page = get_page_from_freelist_work(w, gfp, order, alloc_flags, cpu)
    return w.freeze(), page


@rule("ALLOC-OP-033", "alloc_pages: fast path, then the slow path's first attempt",
      "mm/page_alloc.c:__alloc_frozen_pages_noprof,prepare_alloc_pages,"
      "__alloc_pages_slowpath @ v6.18")
def alloc_pages(z: Zone, gfp: int, order: int, cpu: int = 0) -> tuple[Zone, int | None]:
    """
    An order above MAX_PAGE_ORDER fails (the kernel warns). The fast path tries
    ``get_page_from_freelist`` with ALLOC_WMARK_LOW, ``alloc_flags_nofragment`` and ALLOC_CMA
    for movable requests. If it fails, the slow path's first attempt uses
    ``gfp_to_alloc_flags`` (ALLOC-POL-006). Beyond that attempt the model returns None (see the
    module note). On success the block is recorded as allocated with the request's
    migratetype.
    """
    w = Work(z)
    _check_cpu(w, cpu)
    cfg = w.config
    if not 0 <= order <= cfg.max_page_order:
        return z, None
    migratetype = gfp_migratetype(gfp, cfg.page_group_by_mobility_disabled)
    alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(gfp, cfg.defrag_mode,
                                                           cfg.zone_is_normal_with_dma32)
    if migratetype == MIGRATE_MOVABLE:
        alloc_flags |= ALLOC_CMA
    page = get_page_from_freelist_work(w, gfp, order, alloc_flags, cpu)
    if page is None:
        slow_flags = gfp_to_alloc_flags(gfp, order, cfg.defrag_mode,
                                        alloc_base_variant(cfg.variant))
        page = get_page_from_freelist_work(w, gfp, order, slow_flags, cpu)
    return w.freeze(), page


@rule("ALLOC-OP-034", "free_pages: per-CPU list or buddy",
      "mm/page_alloc.c:__free_frozen_pages,free_one_page @ v6.18")
def free_pages(z: Zone, pfn: int, order: int, cpu: int = 0) -> tuple[Zone, None]:
    """
    Only a block handed out by the allocator, with its own order, may be freed. A block of a
    non-per-CPU order goes to the buddy through ``free_one_page`` (ALLOC-OP-003). Otherwise
    the block's **current** pageblock type decides: ISOLATE goes straight to the buddy;
    HIGHATOMIC and CMA are queued on the MOVABLE per-CPU list; the pcp types on their own
    (ALLOC-OP-023).
    """
    w = Work(z)
    _check_cpu(w, cpu)
    free_pages_work(w, pfn, order, cpu)
    return w.freeze(), None


def free_pages_work(w: Work, pfn: int, order: int, cpu: int) -> None:
    """ALLOC-OP-034 on the working copy (reclaim and compaction free through it)."""
    a = w.allocated.get(pfn)
    if a is None or a.order != order:
        raise SpecError(f"free of pfn {pfn} order {order}: not an allocated block")
    del w.allocated[pfn]
    if not w.config.pcp_allowed_order(order):
        split_large_buddy(w, pfn, order)
        return
    mt = w.get_pfnblock_migratetype(pfn)
    if mt >= MIGRATE_PCPTYPES:
        if mt == MIGRATE_ISOLATE:
            split_large_buddy(w, pfn, order)
            return
        mt = MIGRATE_MOVABLE
    free_pcp_commit(w, cpu, pfn, order, mt)


def drain_pages(z: Zone, cpu: int) -> tuple[Zone, None]:
    """``drain_pages_zone`` for one CPU (ALLOC-OP-024)."""
    w = Work(z)
    _check_cpu(w, cpu)
    drain_pages_zone(w, cpu)
    return w.freeze(), None


@rule("ALLOC-OP-035", "Changing a knob",
      "mm/page_alloc.c:setup_per_zone_wmarks,zone_pcp_update; kernel/sysctl @ v6.18")
def set_knob(z: Zone, name: str, value: int) -> tuple[Zone, None]:
    """
    ``min_free_kbytes`` and ``watermark_scale_factor`` recompute the watermarks (which resets
    the boost to 0) and the per-CPU bounds; ``percpu_pagelist_high_fraction`` recomputes the
    per-CPU bounds (``high`` itself is clamped into the new bounds at its next use);
    ``watermark_boost_factor`` and ``defrag_mode`` take effect at their next use.
    """
    cfg = z.config.with_knob(name, value)
    w = Work(z)
    w.config = cfg
    if name in ("min_free_kbytes", "watermark_scale_factor", "percpu_pagelist_high_fraction"):
        if name != "percpu_pagelist_high_fraction":
            w.watermark = list(zone_wmarks(cfg))
            w.watermark_boost = 0
        batch, high_min, high_max = _pcp_init(cfg, w.watermark[WMARK_LOW])
        for pcp in w.pcp:
            pcp.batch, pcp.high_min, pcp.high_max = batch, high_min, high_max
    return w.freeze(), None


@rule("ALLOC-OP-036", "Isolating a pageblock",
      "mm/page_isolation.c:set_migratetype_isolate; "
      "mm/page_alloc.c:pageblock_isolate_and_move_free_pages @ v6.18")
def isolate_pageblock(z: Zone, pageblock: int) -> tuple[Zone, bool]:
    """
    An already isolated block cannot be isolated again (False). Otherwise the isolate bit is
    set and the block's free pages move to the ISOLATE lists, where they no longer count as
    free; a free buddy spanning more than the block is split pageblock by pageblock first.
    The block's own 3-bit type is kept for un-isolation. (Whether the block holds unmovable
    pages is the caller's policy in page_isolation.c and is not modelled.)
    """
    w = Work(z)
    if not 0 <= pageblock < w.config.nr_pageblocks:
        raise SpecError(f"pageblock {pageblock} outside the zone")
    if w.pageblock_isolate[pageblock]:
        return z, False
    pfn = w.config.zone_start_pfn + (pageblock << w.config.pageblock_order)
    move_freepages_block_isolate(w, pfn, True)
    return w.freeze(), True


@rule("ALLOC-OP-037", "Un-isolating a pageblock",
      "mm/page_isolation.c:unset_migratetype_isolate @ v6.18")
def unisolate_pageblock(z: Zone, pageblock: int) -> tuple[Zone, bool]:
    """
    A block that is not isolated is left alone (False). If the whole block is one free buddy
    of exactly pageblock order whose buddy is free and not isolated, it is taken off the
    ISOLATE list, the bit cleared, and it is freed again to the tail so it can merge.
    Otherwise the block's free pages move back to its type's lists (a larger isolated buddy is
    split pageblock by pageblock) and the bit is cleared. Deviation, on purpose: for an
    isolated buddy larger than a pageblock, 6.12's putback would free it whole under the first
    block's type while its other blocks are still isolated; the model splits it instead.
    """
    w = Work(z)
    cfg = w.config
    if not 0 <= pageblock < cfg.nr_pageblocks:
        raise SpecError(f"pageblock {pageblock} outside the zone")
    if not w.pageblock_isolate[pageblock]:
        return z, False
    pfn = cfg.zone_start_pfn + (pageblock << cfg.pageblock_order)
    mt = w.pageblock_migratetype[pageblock]
    entry = w.buddy.get(pfn)
    if entry is not None and entry[0] == cfg.pageblock_order < cfg.max_page_order:
        buddy_pfn = find_buddy_pfn(pfn, cfg.pageblock_order)
        if (page_is_buddy(w, buddy_pfn, cfg.pageblock_order)
                and w.get_pfnblock_migratetype(buddy_pfn) != MIGRATE_ISOLATE):
            del_from_free_list_raw(w, pfn, cfg.pageblock_order, MIGRATE_ISOLATE)
            w.set_pageblock_migratetype(pfn, mt)
            free_one_page_locked(w, pfn, cfg.pageblock_order, mt,
                                 FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL)
            return w.freeze(), True
    move_freepages_block_isolate(w, pfn, False)
    return w.freeze(), True


def unreserve_highatomic_pageblock(z: Zone, migratetype: int,
                                   force: bool) -> tuple[Zone, bool]:
    """ALLOC-OP-015 as an operation (the slow path calls it after failed reclaim).

    ``migratetype`` is the request's (``ac->migratetype``), so with mobility grouping disabled
    it is UNMOVABLE whatever the caller asks for.
    """
    if migratetype not in (0, 1, 2):
        raise SpecError("unreserve converts to a pcp migratetype")
    if z.config.page_group_by_mobility_disabled:
        migratetype = 0
    w = Work(z)
    done = _unreserve(w, migratetype, force)
    return w.freeze(), done


#: Operation names, for checkers and adapters.
OPERATIONS = ("alloc_pages", "free_pages", "drain_pages", "set_knob", "isolate_pageblock",
              "unisolate_pageblock", "unreserve_highatomic_pageblock", "get_page_from_freelist")

__all__ = ["init_zone", "alloc_pages", "free_pages", "drain_pages", "set_knob",
           "isolate_pageblock", "unisolate_pageblock", "unreserve_highatomic_pageblock",
           "get_page_from_freelist", "OPERATIONS", "ALLOC_WMARK_LOW", "WMARK_HIGH",
           "MIGRATE_CMA", "MIGRATE_TYPES"]
