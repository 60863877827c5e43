"""Buddy arithmetic, free-list primitives, splitting and merging.

The arithmetic helpers (``find_buddy_pfn``, ``combined_pfn``, ``is_aligned``,
``pageblock_align``, ``split_pieces``) use only ``^``, ``&``, ``~``, ``+``, ``<<`` and
comparisons, so the proofs run them on Z3 bit-vectors unchanged.
"""

from __future__ import annotations

from typing import Any

from spec.constants import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    migratetype_is_mergeable,
)
from spec.rules import rule
from spec.zone import SpecError, Work

FPI_NONE = 0
FPI_TO_TAIL = 1 << 1
FPI_SKIP_REPORT_NOTIFY = 1 << 0


# --- arithmetic (mm/internal.h) ---------------------------------------------------------------

@rule("ALLOC-POL-020", "Buddy and parent pfn",
      "mm/internal.h:__find_buddy_pfn @ v6.18")
def find_buddy_pfn(pfn: Any, order: Any) -> Any:
    """
    The buddy of the order-``order`` block at ``pfn`` (which is aligned to ``1 << order``) is
    ``pfn ^ (1 << order)``; the two combine into the order+1 block at ``pfn & buddy_pfn``.
    """
    return pfn ^ (1 << order)


def combined_pfn(pfn: Any, buddy_pfn: Any) -> Any:
    return pfn & buddy_pfn


def is_aligned(pfn: Any, order: Any) -> Any:
    return pfn & ((1 << order) - 1) == 0


def pageblock_align(pfn: Any, pageblock_order: Any) -> Any:
    """``pageblock_start_pfn``: the first pfn of the pageblock holding ``pfn``."""
    return pfn & ~((1 << pageblock_order) - 1)


def split_pieces(pfn: Any, low: int, high: int) -> list[tuple[Any, int]]:
    """The upper halves ``expand`` puts back when it splits ``pfn`` from ``high`` down to
    ``low``, in the order it puts them back: ``(pfn + size, order)``."""
    size = 1 << high
    pieces = []
    while high > low:
        high -= 1
        size >>= 1
        pieces.append((pfn + size, high))
    return pieces


# --- free-list primitives (6.10+ "freelist hygiene") -------------------------------------------

def account_freepages(w: Work, nr_pages: int, migratetype: int) -> None:
    """NR_FREE_PAGES, NR_FREE_CMA_PAGES and nr_free_highatomic follow the list type."""
    if migratetype == MIGRATE_ISOLATE:
        return
    w.nr_free_pages += nr_pages
    if migratetype == MIGRATE_CMA:
        w.nr_free_cma_pages += nr_pages
    elif migratetype == MIGRATE_HIGHATOMIC:
        w.nr_free_highatomic += nr_pages


def _blocks_delta(w: Work, order: int, migratetype: int, nr_pages: int) -> None:
    if order >= w.config.pageblock_order and migratetype != MIGRATE_ISOLATE:
        w.nr_free_pages_blocks += nr_pages


@rule("ALLOC-OP-001", "Adding a free buddy to a list",
      "mm/page_alloc.c:__add_to_free_list @ v6.18")
def add_to_free_list(w: Work, pfn: int, order: int, migratetype: int, tail: bool) -> None:
    """
    A free buddy goes on ``free_area[order].free_list[mt]`` where ``mt`` must be its
    pageblock's type (the kernel WARNs otherwise; the model refuses). ``nr_free[order]``
    counts it; NR_FREE_PAGES_BLOCKS counts its pages when order >= pageblock_order and the
    list is not ISOLATE. NR_FREE_PAGES is accounted by the caller (``account_freepages``).
    """
    if w.get_pfnblock_migratetype(pfn) != migratetype:
        raise SpecError(f"page type is {w.get_pfnblock_migratetype(pfn)}, passed migratetype "
                        f"is {migratetype} (pfn={pfn}, nr={1 << order})")
    lst = w.free_area[order][migratetype]
    if tail:
        lst.append(pfn)
    else:
        lst.insert(0, pfn)
    w.buddy[pfn] = (order, migratetype)
    w.nr_free[order] += 1
    _blocks_delta(w, order, migratetype, 1 << order)


def move_to_free_list(w: Work, pfn: int, order: int, old_mt: int, new_mt: int) -> None:
    """Move a free buddy to the **tail** of another type's list, before the block is retyped."""
    if w.get_pfnblock_migratetype(pfn) != old_mt:
        raise SpecError(f"move_to_free_list: block of pfn {pfn} is not of type {old_mt}")
    w.free_area[order][old_mt].remove(pfn)
    w.free_area[order][new_mt].append(pfn)
    w.buddy[pfn] = (order, new_mt)
    account_freepages(w, -(1 << order), old_mt)
    account_freepages(w, 1 << order, new_mt)
    if order >= w.config.pageblock_order and (old_mt == MIGRATE_ISOLATE) != (
            new_mt == MIGRATE_ISOLATE):
        w.nr_free_pages_blocks += (1 << order) if old_mt == MIGRATE_ISOLATE else -(1 << order)


def del_from_free_list_raw(w: Work, pfn: int, order: int, migratetype: int) -> None:
    """``__del_page_from_free_list``: unlink, clear PageBuddy, ``nr_free--``; no NR_FREE_PAGES."""
    if w.get_pfnblock_migratetype(pfn) != migratetype:
        raise SpecError(f"del: block of pfn {pfn} is not of type {migratetype}")
    w.free_area[order][migratetype].remove(pfn)
    del w.buddy[pfn]
    w.nr_free[order] -= 1
    _blocks_delta(w, order, migratetype, -(1 << order))


def del_page_from_free_list(w: Work, pfn: int, order: int, migratetype: int) -> None:
    del_from_free_list_raw(w, pfn, order, migratetype)
    account_freepages(w, -(1 << order), migratetype)


def page_is_buddy(w: Work, buddy_pfn: int, order: int) -> bool:
    """``page_is_buddy``: the pfn is in the zone, PageBuddy, and of exactly this order."""
    if not w.config.zone_spans_pfn(buddy_pfn):
        return False
    entry = w.buddy.get(buddy_pfn)
    return entry is not None and entry[0] == order


def change_pageblock_range(w: Work, pfn: int, start_order: int, migratetype: int) -> None:
    nr_pageblocks = 1 << (start_order - w.config.pageblock_order)
    for i in range(nr_pageblocks):
        w.set_pageblock_migratetype(pfn + i * w.config.pageblock_nr_pages, migratetype)


def buddy_merge_likely(w: Work, pfn: int, buddy_pfn: int, order: int) -> bool:
    """Tail insertion if the order+1 buddy of our parent is free: we may merge two levels up."""
    if order >= w.config.max_page_order - 1:
        return False
    higher_page_pfn = buddy_pfn & pfn
    return page_is_buddy(w, find_buddy_pfn(higher_page_pfn, order + 1), order + 1)


@rule("ALLOC-OP-002", "Freeing a block into the buddy lists, with merging",
      "mm/page_alloc.c:__free_one_page @ v6.18")
def free_one_page_locked(w: Work, pfn: int, order: int, migratetype: int,
                         fpi_flags: int = FPI_NONE) -> None:
    """
    ``__free_one_page``: account the pages to ``migratetype`` up front, then, while
    order < MAX_PAGE_ORDER and the buddy ``pfn ^ (1 << order)`` is a free buddy of the same
    order in the zone, merge. At or above pageblock_order (two different pageblocks) read the
    buddy's block type; stop if the types differ and either is not mergeable (ISOLATE, CMA and
    HIGHATOMIC never merge across); if they differ and both are mergeable, retype the buddy's
    blocks to ours so that a later split puts the halves on the right lists. Insert at the
    tail with FPI_TO_TAIL or when ``buddy_merge_likely`` (the order+1 buddy of the combined
    block is free), else at the head. (Compaction capture and shuffling are not modelled.)
    """
    cfg = w.config
    if not is_aligned(pfn, order) or not cfg.zone_spans_pfn(pfn):
        raise SpecError(f"freeing misaligned or foreign block pfn={pfn} order={order}")
    account_freepages(w, 1 << order, migratetype)
    buddy_pfn = 0
    while order < cfg.max_page_order:
        buddy_pfn = find_buddy_pfn(pfn, order)
        if not page_is_buddy(w, buddy_pfn, order):
            break
        buddy_mt = migratetype
        if order >= cfg.pageblock_order:
            buddy_mt = w.get_pfnblock_migratetype(buddy_pfn)
            if migratetype != buddy_mt and (not migratetype_is_mergeable(migratetype)
                                            or not migratetype_is_mergeable(buddy_mt)):
                break
        del_from_free_list_raw(w, buddy_pfn, order, buddy_mt)
        if buddy_mt != migratetype:
            change_pageblock_range(w, buddy_pfn, order, migratetype)
        pfn = combined_pfn(pfn, buddy_pfn)
        order += 1
    if fpi_flags & FPI_TO_TAIL:
        to_tail = True
    else:
        to_tail = buddy_merge_likely(w, pfn, buddy_pfn, order)
    add_to_free_list(w, pfn, order, migratetype, to_tail)


@rule("ALLOC-OP-003", "Freeing a multi-pageblock block pageblock by pageblock",
      "mm/page_alloc.c:split_large_buddy,free_one_page @ v6.18")
def split_large_buddy(w: Work, pfn: int, order: int, fpi_flags: int = FPI_NONE) -> None:
    """
    A block larger than a pageblock is freed as pageblock-sized pieces, each with the type of
    its own pageblock, so that pieces of differently typed blocks land on their own lists;
    smaller blocks are freed whole with their block's type. ``free_one_page`` is this under
    zone->lock.
    """
    end = pfn + (1 << order)
    if order > w.config.pageblock_order:
        order = w.config.pageblock_order
    while True:
        mt = w.get_pfnblock_migratetype(pfn)
        free_one_page_locked(w, pfn, order, mt, fpi_flags)
        pfn += 1 << order
        if pfn == end:
            break


@rule("ALLOC-OP-004", "Splitting a larger free block",
      "mm/page_alloc.c:expand,page_del_and_expand @ v6.18")
def expand(w: Work, pfn: int, low: int, high: int, migratetype: int) -> int:
    """
    Splitting an order-``high`` block down to ``low`` keeps the lower half each time and puts
    the upper half ``pfn + size`` on the **head** of ``free_list[migratetype]`` at the order
    just below. Returns the number of pages put back.
    """
    nr_added = 0
    for piece_pfn, order in split_pieces(pfn, low, high):
        add_to_free_list(w, piece_pfn, order, migratetype, tail=False)
        nr_added += 1 << order
    return nr_added


def page_del_and_expand(w: Work, pfn: int, low: int, high: int, migratetype: int) -> None:
    nr_pages = 1 << high
    del_from_free_list_raw(w, pfn, high, migratetype)
    nr_pages -= expand(w, pfn, low, high, migratetype)
    account_freepages(w, -nr_pages, migratetype)


@rule("ALLOC-OP-005", "Smallest fit from the requested type",
      "mm/page_alloc.c:__rmqueue_smallest @ v6.18")
def rmqueue_smallest(w: Work, order: int, migratetype: int) -> int | None:
    """
    For current_order = order .. MAX_PAGE_ORDER, take the **head** of
    ``free_area[current_order].free_list[migratetype]``, split it down to ``order`` on that
    same type's lists, and return it; None if every list is empty.
    """
    for current_order in range(order, w.config.nr_page_orders):
        lst = w.free_area[current_order][migratetype]
        if not lst:
            continue
        pfn = lst[0]
        page_del_and_expand(w, pfn, order, current_order, migratetype)
        return pfn
    return None


def pageblock_start_pfn(w: Work, pfn: int) -> int:
    return pageblock_align(pfn, w.config.pageblock_order)


def count_block_pages(w: Work, start_pfn: int) -> tuple[int, int]:
    """``prep_move_freepages_block``'s census: free pages and movable (LRU) pages.

    Allocated blocks of a MOVABLE request stand for LRU/movable pages and count page by page;
    pages on per-CPU lists and other allocations count as neither.
    """
    end_pfn = start_pfn + w.config.pageblock_nr_pages
    free_pages = sum(1 << order for pfn, (order, _) in w.buddy.items()
                     if start_pfn <= pfn < end_pfn)
    movable_pages = 0
    for a in w.allocated.values():
        if a.migratetype != MIGRATE_MOVABLE:
            continue
        lo, hi = max(a.pfn, start_pfn), min(a.pfn + (1 << a.order), end_pfn)
        if lo < hi:
            movable_pages += hi - lo
    return free_pages, movable_pages


@rule("ALLOC-OP-006", "Moving a pageblock's free pages to another type",
      "mm/page_alloc.c:__move_freepages_block,move_freepages_block @ v6.18")
def move_freepages_block(w: Work, pfn: int, old_mt: int, new_mt: int) -> int:
    """
    Walk the pageblock of ``pfn`` in pfn order and move every free buddy to the tail of
    ``new_mt``'s list (free pages move **before** the block type is written), then set the
    block's type. Returns the number of pages moved (-1 if the block straddles the zone,
    which a model zone never does).
    """
    start_pfn = pageblock_start_pfn(w, pfn)
    if not (w.config.zone_spans_pfn(start_pfn)
            and w.config.zone_spans_pfn(start_pfn + w.config.pageblock_nr_pages - 1)):
        return -1
    moved = 0
    p = start_pfn
    end_pfn = start_pfn + w.config.pageblock_nr_pages
    while p < end_pfn:
        entry = w.buddy.get(p)
        if entry is None:
            p += 1
            continue
        order = entry[0]
        move_to_free_list(w, p, order, old_mt, new_mt)
        p += 1 << order
        moved += 1 << order
    w.set_pageblock_migratetype(start_pfn, new_mt)
    return moved


def find_large_buddy(w: Work, start_pfn: int) -> int:
    """A free buddy that begins before ``start_pfn`` and straddles it, else ``start_pfn``."""
    order = 0
    pfn = start_pfn
    while pfn not in w.buddy:
        order += 1
        if order > w.config.max_page_order:
            return start_pfn
        pfn &= ~0 << order
    if pfn + (1 << w.buddy[pfn][0]) > start_pfn:
        return pfn
    return start_pfn


def move_freepages_block_isolate(w: Work, pfn: int, isolate: bool) -> bool:
    """Flip a block's isolate bit, splitting a free buddy that spans more than the block."""
    cfg = w.config
    start_pfn = pageblock_start_pfn(w, pfn)
    pb = cfg.pageblock_of(start_pfn)

    def set_bit() -> None:
        w.pageblock_isolate[pb] = isolate

    if cfg.pageblock_order != cfg.max_page_order:
        big = find_large_buddy(w, start_pfn)
        if big == start_pfn and not (start_pfn in w.buddy
                                     and w.buddy[start_pfn][0] > cfg.pageblock_order):
            big = -1
        if big >= 0:
            order, mt = w.buddy[big]
            del_page_from_free_list(w, big, order, mt)
            set_bit()
            split_large_buddy(w, big, order)
            return True
    old_mt = w.get_pfnblock_migratetype(start_pfn)
    new_mt = w.pageblock_migratetype[pb] if not isolate else MIGRATE_ISOLATE
    p = start_pfn
    end_pfn = start_pfn + cfg.pageblock_nr_pages
    while p < end_pfn:
        entry = w.buddy.get(p)
        if entry is None:
            p += 1
            continue
        move_to_free_list(w, p, entry[0], old_mt, new_mt)
        p += 1 << entry[0]
    set_bit()
    return True
