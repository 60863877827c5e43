"""Fallbacks: claiming whole pageblocks, stealing single chunks, and the highatomic reserve."""

from __future__ import annotations

from typing import Any

from spec.buddy import (
    account_freepages,
    change_pageblock_range,
    count_block_pages,
    del_page_from_free_list,
    expand,
    move_freepages_block,
    move_to_free_list,
    page_del_and_expand,
    pageblock_start_pfn,
    rmqueue_smallest,
)
from spec.constants import (
    ALLOC_CMA,
    ALLOC_KSWAPD,
    ALLOC_NOFRAGMENT,
    FALLBACKS,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    migratetype_is_mergeable,
)
from spec.rules import rule
from spec.watermark import INT, boost_watermark, highatomic_max
from spec.zone import ZONE_BOOSTED_WATERMARK, Work

RMQUEUE_NORMAL = 0
RMQUEUE_CMA = 1
RMQUEUE_CLAIM = 2
RMQUEUE_STEAL = 3


@rule("ALLOC-POL-030", "When a fallback may claim the whole pageblock",
      "mm/page_alloc.c:should_try_claim_block @ v6.18")
def should_try_claim_block(order: Any, start_mt: Any, pageblock_order: Any,
                           page_group_by_mobility_disabled: Any = False, ops: Any = INT) -> Any:
    """
    ``order`` is the order of the candidate free block. Claiming is tried when it is at least
    a pageblock, or at least half a pageblock's order (``pageblock_order / 2``), or when the
    request is UNMOVABLE or RECLAIMABLE (always try, to avoid polluting movable blocks), or
    when mobility grouping is disabled. Otherwise (MOVABLE from a small block) the request
    steals instead.
    """
    return ops.or_(order >= pageblock_order,
                   order >= ops.div(pageblock_order, 2),
                   start_mt == MIGRATE_RECLAIMABLE,
                   start_mt == MIGRATE_UNMOVABLE,
                   page_group_by_mobility_disabled)


def find_suitable_fallback(w: Work, order: int, migratetype: int, claimable: bool) -> int:
    """-2: claiming not worth it at this order; -1: nothing here; else the fallback type."""
    cfg = w.config
    if claimable and not should_try_claim_block(order, migratetype, cfg.pageblock_order,
                                                cfg.page_group_by_mobility_disabled):
        return -2
    if w.nr_free[order] == 0:
        return -1
    for fallback_mt in FALLBACKS[migratetype]:
        if w.free_area[order][fallback_mt]:
            return fallback_mt
    return -1


@rule("ALLOC-POL-031", "The claim threshold: half a pageblock free or compatible",
      "mm/page_alloc.c:try_to_claim_block @ v6.18")
def claim_threshold_met(free_pages: Any, alike_pages: Any, pageblock_order: Any,
                        page_group_by_mobility_disabled: Any = False, ops: Any = INT) -> Any:
    """
    A fallback claims a pageblock smaller than its candidate's order only when
    ``free_pages + alike_pages >= 1 << (pageblock_order - 1)`` (half a pageblock), or mobility
    grouping is disabled. ``alike_pages`` are the movable pages for a MOVABLE request; for
    another request in a MOVABLE block, the pages that are neither free nor movable; else 0.
    """
    return ops.or_(free_pages + alike_pages >= (1 << (pageblock_order - 1)),
                   page_group_by_mobility_disabled)


@rule("ALLOC-OP-010", "Claiming a pageblock for another migratetype",
      "mm/page_alloc.c:try_to_claim_block @ v6.18")
def try_to_claim_block(w: Work, pfn: int, current_order: int, order: int, start_type: int,
                       block_type: int, alloc_flags: int) -> int | None:
    """
    A candidate of at least pageblock order is taken whole: unlinked, all its pageblocks
    retyped to ``start_type``, split on ``start_type``'s lists. A smaller candidate first
    boosts the watermark (setting ZONE_BOOSTED_WATERMARK with ALLOC_KSWAPD), even if the claim
    then fails; then counts the block's free and movable pages and, if the threshold of
    ALLOC-POL-031 is met, moves the block's free pages and retypes it, and allocates with
    ``__rmqueue_smallest(start_type)`` (which need not return the candidate). Else None, and
    the block is untouched.
    """
    cfg = w.config
    if current_order >= cfg.pageblock_order:
        del_page_from_free_list(w, pfn, current_order, block_type)
        change_pageblock_range(w, pfn, current_order, start_type)
        nr_added = expand(w, pfn, order, current_order, start_type)
        account_freepages(w, nr_added, start_type)
        return pfn
    if boost_watermark(w) and alloc_flags & ALLOC_KSWAPD:
        w.flags.add(ZONE_BOOSTED_WATERMARK)
    start_pfn = pageblock_start_pfn(w, pfn)
    free_pages, movable_pages = count_block_pages(w, start_pfn)
    if start_type == MIGRATE_MOVABLE:
        alike_pages = movable_pages
    elif block_type == MIGRATE_MOVABLE:
        alike_pages = cfg.pageblock_nr_pages - (free_pages + movable_pages)
    else:
        alike_pages = 0
    if claim_threshold_met(free_pages, alike_pages, cfg.pageblock_order,
                           cfg.page_group_by_mobility_disabled):
        move_freepages_block(w, start_pfn, block_type, start_type)
        return rmqueue_smallest(w, order, start_type)
    return None


@rule("ALLOC-OP-011", "Claim: largest free block first",
      "mm/page_alloc.c:__rmqueue_claim @ v6.18")
def rmqueue_claim(w: Work, order: int, start_migratetype: int, alloc_flags: int) -> int | None:
    """
    Scan from MAX_PAGE_ORDER down to ``order`` (down to pageblock_order only, under
    ALLOC_NOFRAGMENT with a sub-pageblock request: only whole free pageblocks may be taken).
    At each order take the first non-empty fallback list in table order and try to claim the
    block of its head; stop at the first order where claiming is not worth trying.
    """
    min_order = order
    if order < w.config.pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
        min_order = w.config.pageblock_order
    for current_order in range(w.config.max_page_order, min_order - 1, -1):
        fallback_mt = find_suitable_fallback(w, current_order, start_migratetype, True)
        if fallback_mt == -1:
            continue
        if fallback_mt == -2:
            break
        pfn = w.free_area[current_order][fallback_mt][0]
        page = try_to_claim_block(w, pfn, current_order, order, start_migratetype,
                                  fallback_mt, alloc_flags)
        if page is not None:
            return page
    return None


@rule("ALLOC-OP-012", "Steal: smallest free block first, block type unchanged",
      "mm/page_alloc.c:__rmqueue_steal @ v6.18")
def rmqueue_steal(w: Work, order: int, start_migratetype: int) -> int | None:
    """
    Scan from ``order`` up; at the first order with a non-empty fallback list, take its head
    and split it on the **fallback** type's lists: the block keeps its type, so the returned
    page pollutes it. (The 6.15 fix "don't steal single pages from biggest buddy".)
    """
    for current_order in range(order, w.config.nr_page_orders):
        fallback_mt = find_suitable_fallback(w, current_order, start_migratetype, False)
        if fallback_mt == -1:
            continue
        pfn = w.free_area[current_order][fallback_mt][0]
        page_del_and_expand(w, pfn, order, current_order, fallback_mt)
        return pfn
    return None


@rule("ALLOC-OP-013", "__rmqueue and its modes",
      "mm/page_alloc.c:__rmqueue @ v6.18")
def rmqueue(w: Work, order: int, migratetype: int, alloc_flags: int,
            mode: list[int]) -> int | None:
    """
    With ALLOC_CMA and more than half the free pages in CMA, try CMA first. Then, from the
    level ``mode[0]`` on: NORMAL, ``__rmqueue_smallest`` of the requested type; CMA (with
    ALLOC_CMA), success sets the mode to CMA; CLAIM, ``__rmqueue_claim``, success sets the mode
    to NORMAL (the preferred lists were refilled); STEAL, only **without** ALLOC_NOFRAGMENT,
    ``__rmqueue_steal``, success sets the mode to STEAL. ``rmqueue_bulk`` keeps the mode across
    its batch, so levels that failed are not searched again.
    """
    if alloc_flags & ALLOC_CMA and w.nr_free_cma_pages > w.nr_free_pages // 2:
        page = rmqueue_smallest(w, order, MIGRATE_CMA)
        if page is not None:
            return page
    level = mode[0]
    if level <= RMQUEUE_NORMAL:
        page = rmqueue_smallest(w, order, migratetype)
        if page is not None:
            return page
    if level <= RMQUEUE_CMA and alloc_flags & ALLOC_CMA:
        page = rmqueue_smallest(w, order, MIGRATE_CMA)
        if page is not None:
            mode[0] = RMQUEUE_CMA
            return page
    if level <= RMQUEUE_CLAIM:
        page = rmqueue_claim(w, order, migratetype, alloc_flags)
        if page is not None:
            mode[0] = RMQUEUE_NORMAL
            return page
    if not alloc_flags & ALLOC_NOFRAGMENT:
        page = rmqueue_steal(w, order, migratetype)
        if page is not None:
            mode[0] = RMQUEUE_STEAL
            return page
    return None


@rule("ALLOC-OP-014", "Reserving a highatomic pageblock",
      "mm/page_alloc.c:reserve_highatomic_pageblock @ v6.18")
def reserve_highatomic_pageblock(w: Work, pfn: int, order: int) -> None:
    """
    After an ALLOC_HIGHATOMIC allocation succeeds: nothing if the zone's 1% is less than a
    pageblock, or if ``nr_reserved_highatomic`` already reaches ``ALIGN(managed/100,
    pageblock_nr_pages)``, or if the block's type is not mergeable. Otherwise a sub-pageblock
    allocation's block becomes HIGHATOMIC (its free pages move) and the reserve grows by a
    pageblock; a larger allocation retypes all its blocks and the reserve grows by
    ``1 << order`` (which may overshoot the bound by less than that).
    """
    cfg = w.config
    managed = w.zone_managed_pages()
    if managed // 100 < cfg.pageblock_nr_pages:
        return
    if w.nr_reserved_highatomic >= highatomic_max(managed, cfg.pageblock_nr_pages):
        return
    mt = w.get_pfnblock_migratetype(pfn)
    if not migratetype_is_mergeable(mt):
        return
    if order < cfg.pageblock_order:
        if move_freepages_block(w, pfn, mt, MIGRATE_HIGHATOMIC) == -1:
            return
        w.nr_reserved_highatomic += cfg.pageblock_nr_pages
    else:
        change_pageblock_range(w, pfn, order, MIGRATE_HIGHATOMIC)
        w.nr_reserved_highatomic += 1 << order


@rule("ALLOC-OP-015", "Giving back a highatomic pageblock",
      "mm/page_alloc.c:unreserve_highatomic_pageblock @ v6.18")
def unreserve_highatomic_pageblock(w: Work, migratetype: int, force: bool) -> bool:
    """
    Unless ``force``, keep at least one reserved pageblock. Otherwise find, from order 0 up,
    the first free page on a HIGHATOMIC list; the reserve shrinks by
    ``max(pageblock_nr_pages, 1 << order)`` (clamped at 0), and the page's block (or, for a
    block of pageblock order or more, the whole range) becomes ``migratetype``. Only the first
    such block is converted. Returns whether one was.
    """
    cfg = w.config
    if not force and w.nr_reserved_highatomic <= cfg.pageblock_nr_pages:
        return False
    for order in range(cfg.nr_page_orders):
        lst = w.free_area[order][MIGRATE_HIGHATOMIC]
        if not lst:
            continue
        pfn = lst[0]
        mt = w.get_pfnblock_migratetype(pfn)
        if mt == MIGRATE_HIGHATOMIC:
            size = max(cfg.pageblock_nr_pages, 1 << order)
            size = min(size, w.nr_reserved_highatomic)
            w.nr_reserved_highatomic -= size
        if order < cfg.pageblock_order:
            ret = move_freepages_block(w, pfn, mt, migratetype)
        else:
            move_to_free_list(w, pfn, order, mt, migratetype)
            change_pageblock_range(w, pfn, order, migratetype)
            ret = 1
        if ret > 0:
            return True
    return False
