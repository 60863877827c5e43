"""State invariants of the ALLOC core, stated over a :class:`~spec.zone.Zone`.

Each invariant is a rule (``ALLOC-INV-NNN``) whose code returns the list of violations it
finds (empty when it holds). They apply to spec states directly, to any implementation's
state through its abstraction function (``checker.adapter``), and are what the proofs
quantify over.
"""

from __future__ import annotations

from collections.abc import Callable

from spec.buddy import find_buddy_pfn
from spec.constants import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    PCP_BATCH_SCALE_MAX,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
)
from spec.rules import rule
from spec.watermark import highatomic_max
from spec.zone import PCPF_FREE_HIGH_BATCH, PCPF_PREV_FREE_HIGH_ORDER, Zone

Invariant = Callable[[Zone], list[str]]
INVARIANTS: list[Invariant] = []


def invariant(rule_id: str, title: str, anchor: str) -> Callable[[Invariant], Invariant]:
    def register(fn: Invariant) -> Invariant:
        rule(rule_id, title, anchor)(fn)
        INVARIANTS.append(fn)
        return fn
    return register


def _owned_blocks(z: Zone) -> list[tuple[str, int, int]]:
    blocks = [("free", pfn, order) for pfn, order, _ in z.free_blocks()]
    blocks += [(f"pcp{cpu}", pfn, order) for cpu, _, pfn, order in z.pcp_blocks()]
    blocks += [("allocated", a.pfn, a.order) for a in z.allocated]
    return blocks


@invariant("ALLOC-INV-001", "Blocks are aligned and inside the zone",
           "mm/page_alloc.c:__free_one_page (VM_BUG_ON_PAGE pfn alignment) @ v6.18")
def blocks_aligned(z: Zone) -> list[str]:
    """
    Every free, per-CPU and allocated block of order k starts at a pfn aligned to ``1 << k``,
    has 0 <= k <= MAX_PAGE_ORDER, and lies wholly inside the zone.
    """
    cfg = z.config
    out = []
    for where, pfn, order in _owned_blocks(z):
        if not 0 <= order <= cfg.max_page_order:
            out.append(f"{where} block at pfn {pfn} has order {order}")
        elif pfn & ((1 << order) - 1):
            out.append(f"{where} block at pfn {pfn} is not aligned to order {order}")
        elif pfn < cfg.zone_start_pfn or pfn + (1 << order) > cfg.end_pfn:
            out.append(f"{where} block at pfn {pfn} order {order} leaves the zone")
    return out


@invariant("ALLOC-INV-002", "Every page has exactly one owner",
           "mm/page_alloc.c (PageBuddy, pcp_list, allocated) @ v6.18")
def exact_partition(z: Zone) -> list[str]:
    """
    The zone's pages are partitioned exactly into free buddies, blocks on per-CPU lists and
    allocated blocks: no page is lost and none is owned twice.
    """
    cfg = z.config
    owner: dict[int, str] = {}
    out = []
    for where, pfn, order in _owned_blocks(z):
        for p in range(pfn, pfn + (1 << order)):
            if p in owner:
                out.append(f"page {p} owned twice ({owner[p]} and {where})")
                if len(out) > 20:
                    return out
            owner[p] = where
    missing = cfg.spanned_pages - len([p for p in owner if cfg.zone_spans_pfn(p)])
    if missing:
        out.append(f"{missing} pages of the zone are owned by nobody")
    return out


@invariant("ALLOC-INV-003", "Free buddies inside a pageblock are always merged",
           "mm/page_alloc.c:__free_one_page,__move_freepages_block @ v6.18")
def maximal_merging(z: Zone) -> list[str]:
    """
    No two free buddies of an order below pageblock_order are each other's buddy: both lie in
    one pageblock, hence have one type, and ``__free_one_page`` merges them. At pageblock order
    and above no such guarantee exists: moving a block's free pages to another type
    (``unreserve_highatomic_pageblock``, un-isolation, a claim) never merges, so two free
    neighbouring pageblocks may stay unmerged, with equal or different types, until the next
    free in that range.
    """
    cfg = z.config
    free = {pfn: order for pfn, order, _ in z.free_blocks()}
    out = []
    for pfn, order in free.items():
        if order >= cfg.pageblock_order:
            continue
        b = find_buddy_pfn(pfn, order)
        if b > pfn and free.get(b) == order:
            out.append(f"free buddies {pfn} and {b} of order {order} were not merged")
    return out


@invariant("ALLOC-INV-004", "Freelist hygiene: a free page sits on its pageblock's list",
           "mm/page_alloc.c:__add_to_free_list (VM_WARN_ONCE type check) @ v6.18")
def freelist_hygiene(z: Zone) -> list[str]:
    """
    A free buddy is on the list of its pageblock's type (ISOLATE when the block's isolate bit
    is set), and every pageblock covered by a free buddy of pageblock order or more has that
    same type.
    """
    cfg = z.config
    out = []
    for pfn, order, mt in z.free_blocks():
        first = cfg.pageblock_of(pfn)
        last = cfg.pageblock_of(pfn + (1 << order) - 1)
        for pb in range(first, last + 1):
            bt = MIGRATE_ISOLATE if z.pageblock_isolate[pb] else z.pageblock_migratetype[pb]
            if bt != mt:
                out.append(f"free block {pfn} order {order} on list {mt} but pageblock {pb} "
                           f"is of type {bt}")
    return out


@invariant("ALLOC-INV-005", "nr_free counts the blocks of each order",
           "include/linux/mmzone.h:struct free_area @ v6.18")
def nr_free_matches(z: Zone) -> list[str]:
    """``free_area[k].nr_free`` equals the number of free blocks of order k on all lists."""
    return [f"nr_free[{o}] = {z.nr_free[o]} but {sum(map(len, lists))} blocks are listed"
            for o, lists in enumerate(z.free_area) if z.nr_free[o] != sum(map(len, lists))]


def _sum_pages(z: Zone, keep: Callable[[int, int], bool]) -> int:
    return sum(len(lst) << order for order, lists in enumerate(z.free_area)
               for mt, lst in enumerate(lists) if keep(order, mt))


@invariant("ALLOC-INV-006", "Free-page counters equal their definitions",
           "mm/page_alloc.c:account_freepages,__add_to_free_list @ v6.18")
def counters_match(z: Zone) -> list[str]:
    """
    NR_FREE_PAGES is the number of pages on all non-ISOLATE free lists; NR_FREE_CMA_PAGES
    those on CMA lists; ``nr_free_highatomic`` those on HIGHATOMIC lists;
    NR_FREE_PAGES_BLOCKS those in non-ISOLATE free buddies of pageblock order or more. Pages on
    per-CPU lists are not free pages.
    """
    pb = z.config.pageblock_order
    want = {
        "NR_FREE_PAGES": (z.nr_free_pages, _sum_pages(z, lambda o, mt: mt != MIGRATE_ISOLATE)),
        "NR_FREE_CMA_PAGES": (z.nr_free_cma_pages, _sum_pages(z, lambda o, mt: mt == MIGRATE_CMA)),
        "nr_free_highatomic": (z.nr_free_highatomic,
                               _sum_pages(z, lambda o, mt: mt == MIGRATE_HIGHATOMIC)),
        "NR_FREE_PAGES_BLOCKS": (z.nr_free_pages_blocks,
                                 _sum_pages(z, lambda o, mt: o >= pb and mt != MIGRATE_ISOLATE)),
    }
    return [f"{name} = {have} but the lists hold {should}"
            for name, (have, should) in want.items() if have != should]


@invariant("ALLOC-INV-007", "Per-CPU counts and list placement",
           "mm/page_alloc.c:order_to_pindex,free_frozen_page_commit @ v6.18")
def pcp_consistent(z: Zone) -> list[str]:
    """
    Each CPU's ``count`` is the number of pages (sum of ``1 << order``) on its lists; lists
    exist only for per-CPU orders (0..PAGE_ALLOC_COSTLY_ORDER and the THP order), and the
    bounds satisfy 1 <= batch and batch * 4 <= high_min, high_max (in a small zone high_min
    may exceed high_max; the kernel's clamp then yields high_max).
    """
    cfg = z.config
    out = []
    for cpu, pcp in enumerate(z.pcp):
        pages = sum(len(lst) << cfg.pindex_to_order(i) for i, lst in enumerate(pcp.lists))
        if pages != pcp.count:
            out.append(f"cpu {cpu}: pcp count {pcp.count} but lists hold {pages} pages")
        if len(pcp.lists) != cfg.nr_pcp_lists:
            out.append(f"cpu {cpu}: {len(pcp.lists)} pcp lists, want {cfg.nr_pcp_lists}")
        if not (1 <= pcp.batch and pcp.batch * 4 <= min(pcp.high_min, pcp.high_max)):
            out.append(f"cpu {cpu}: bad bounds batch={pcp.batch} high_min={pcp.high_min} "
                       f"high_max={pcp.high_max}")
    return out


@invariant("ALLOC-INV-008", "Per-CPU tuning state stays in range",
           "mm/page_alloc.c:nr_pcp_alloc,free_frozen_page_commit @ v6.18")
def pcp_tuning_in_range(z: Zone) -> list[str]:
    """
    ``alloc_factor`` only grows while below CONFIG_PCP_BATCH_SCALE_MAX, so it stays in
    0..PCP_BATCH_SCALE_MAX; ``free_count`` only grows (by one block) while below
    ``batch << PCP_BATCH_SCALE_MAX``, so it stays below that plus the largest per-CPU block;
    ``flags`` holds only PCPF_PREV_FREE_HIGH_ORDER and PCPF_FREE_HIGH_BATCH; ``high`` is never
    negative.
    """
    cfg = z.config
    largest = max(1 << o for o in range(cfg.nr_page_orders) if cfg.pcp_allowed_order(o))
    out = []
    for cpu, pcp in enumerate(z.pcp):
        if not 0 <= pcp.alloc_factor <= PCP_BATCH_SCALE_MAX:
            out.append(f"cpu {cpu}: alloc_factor {pcp.alloc_factor}")
        if not 0 <= pcp.free_count < (pcp.batch << PCP_BATCH_SCALE_MAX) + largest:
            out.append(f"cpu {cpu}: free_count {pcp.free_count}")
        if pcp.flags & ~(PCPF_PREV_FREE_HIGH_ORDER | PCPF_FREE_HIGH_BATCH):
            out.append(f"cpu {cpu}: unknown flags {pcp.flags:#x}")
        if pcp.high < 0:
            out.append(f"cpu {cpu}: negative high {pcp.high}")
    return out


@invariant("ALLOC-INV-009", "The highatomic reserve is bounded and counts its blocks",
           "mm/page_alloc.c:reserve_highatomic_pageblock,unreserve_highatomic_pageblock @ v6.18")
def highatomic_bound(z: Zone) -> list[str]:
    """
    ``nr_reserved_highatomic`` equals pageblock_nr_pages times the number of HIGHATOMIC
    pageblocks (isolated ones included), and never exceeds ``ALIGN(managed/100,
    pageblock_nr_pages)`` by a pageblock-sized reservation or more, except for an overshoot of
    less than ``1 << MAX_PAGE_ORDER`` from a single reservation of a large block.
    """
    cfg = z.config
    blocks = sum(1 for mt in z.pageblock_migratetype if mt == MIGRATE_HIGHATOMIC)
    out = []
    boot = (cfg.pageblock_types or ()).count(MIGRATE_HIGHATOMIC) * cfg.pageblock_nr_pages
    if z.nr_reserved_highatomic != blocks * cfg.pageblock_nr_pages:
        out.append(f"nr_reserved_highatomic = {z.nr_reserved_highatomic} but {blocks} "
                   f"HIGHATOMIC pageblocks")
    bound = max(boot, highatomic_max(cfg.managed_pages, cfg.pageblock_nr_pages)
                + (1 << cfg.max_page_order) - 1)
    if z.nr_reserved_highatomic > bound:
        out.append(f"nr_reserved_highatomic = {z.nr_reserved_highatomic} exceeds {bound}")
    if z.nr_reserved_highatomic < 0:
        out.append("nr_reserved_highatomic is negative")
    return out


@invariant("ALLOC-INV-010", "Watermarks are ordered",
           "mm/page_alloc.c:__setup_per_zone_wmarks @ v6.18")
def watermarks_ordered(z: Zone) -> list[str]:
    """0 <= min <= low <= high <= promo, and the boost is never negative."""
    wm = z.watermark
    if not (0 <= wm[WMARK_MIN] <= wm[WMARK_LOW] <= wm[WMARK_HIGH] <= wm[WMARK_PROMO]):
        return [f"watermarks out of order: {wm}"]
    if z.watermark_boost < 0:
        return [f"negative boost {z.watermark_boost}"]
    return []


@invariant("ALLOC-INV-011", "Types are in range",
           "include/linux/mmzone.h:enum migratetype @ v6.18")
def types_in_range(z: Zone) -> list[str]:
    """
    Every pageblock's 3-bit type is a real migratetype other than ISOLATE (isolation is the
    separate bit since 6.17); allocations record a pcp migratetype.
    """
    out = [f"pageblock {i} has type {mt}" for i, mt in enumerate(z.pageblock_migratetype)
           if not 0 <= mt < MIGRATE_TYPES or mt == MIGRATE_ISOLATE]
    out += [f"allocation {a.pfn} has migratetype {a.migratetype}" for a in z.allocated
            if not 0 <= a.migratetype < MIGRATE_PCPTYPES]
    return out


def check_invariants(z: Zone) -> list[tuple[str, str]]:
    """Run every invariant; return (rule ID, message) for each violation."""
    out: list[tuple[str, str]] = []
    for fn in INVARIANTS:
        rid = fn.__rules__[0]  # type: ignore[attr-defined]
        out.extend((rid, msg) for msg in fn(z))
    return out


def _free_pages_set(z: Zone) -> set[int]:
    return {p for pfn, order, _ in z.free_blocks() for p in range(pfn, pfn + (1 << order))}


@rule("ALLOC-PROP-001", "ALLOC_NOFRAGMENT never pollutes a pageblock",
      "mm/page_alloc.c:__rmqueue,__rmqueue_claim @ v6.18")
def nofragment_guarantee(before: Zone, after: Zone, gfp: int) -> list[str]:
    """
    Under ``defrag_mode`` every allocation keeps ALLOC_NOFRAGMENT on the paths modelled here
    (fast path and the slow path's first attempt; the final fallback that drops it comes after
    reclaim and compaction). Then every page that leaves the buddy lists in the step lies,
    afterwards, in a pageblock of the request's migratetype, or of HIGHATOMIC or CMA: a
    fallback may only claim whole free pageblocks and never steals.
    """
    if not before.config.defrag_mode:
        return []
    from spec.constants import gfp_migratetype
    mt = gfp_migratetype(gfp, before.config.page_group_by_mobility_disabled)
    left = _free_pages_set(before) - _free_pages_set(after)
    bad = sorted(p for p in left
                 if after.get_pfnblock_migratetype(p) not in (mt, MIGRATE_HIGHATOMIC, MIGRATE_CMA))
    if bad:
        return [f"pages {bad[:8]} left the buddy for a migratetype-{mt} request but their "
                f"pageblocks are of another type"]
    return []
