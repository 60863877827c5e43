"""Memory contents, reclaim and kswapd: the abstract model the slow path relies on.

The ALLOC core knows blocks only as free or allocated. Reclaim and compaction need to know
what an allocated block *holds*: every block allocated through :func:`alloc_page` carries a
kind (anonymous memory, page cache, reclaimable slab, unmovable kernel memory) and an age
(the allocation clock), in a :class:`Memory` that wraps the zone. Reclaim frees what is
reclaimable, oldest first, splitting its effort between anonymous and file-backed memory as
``vm.swappiness`` (60) does; anonymous pages are swapped out. kswapd balances the zone to its
high watermark (in free pageblocks under defrag_mode, for order > 0) and hands contiguity work
to kcompactd.

Deliberate simplifications, each named: no active/inactive split or referenced bits (age
alone orders the LRU), no dirty or writeback pages, slab shrinkers free whole slab pages,
swap is either there (and never runs out) or not at all, one zone and one node.
"""

from __future__ import annotations

from collections import Counter

import attrs

from spec.constants import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    SWAP_CLUSTER_MAX,
    WMARK_HIGH,
)
from spec.page_alloc import free_pages_work
from spec.pcp import drain_pages_zone
from spec.rules import alloc_has, declare, rule
from spec.watermark import zone_watermark_ok
from spec.zone import SpecError, Work, Zone

KIND_ANON = "anon"
KIND_FILE = "file"
KIND_SLAB = "slab"
KIND_KERNEL = "kernel"
KINDS = (KIND_ANON, KIND_FILE, KIND_SLAB, KIND_KERNEL)
#: The migratetype each kind is allocated with (GFP_HIGHUSER_MOVABLE for user and page-cache
#: memory, __GFP_RECLAIMABLE for reclaimable slab caches, plain GFP_KERNEL otherwise).
KIND_MIGRATETYPE = {KIND_ANON: MIGRATE_MOVABLE, KIND_FILE: MIGRATE_MOVABLE,
                    KIND_SLAB: MIGRATE_RECLAIMABLE, KIND_KERNEL: MIGRATE_UNMOVABLE}
#: Kinds on the LRU lists: compaction can migrate them.
LRU_KINDS = (KIND_ANON, KIND_FILE)
#: vm.swappiness default: anon:file scan balance 60:140.
SWAPPINESS = 60
#: ``MAX_RECLAIM_RETRIES``, also kswapd's failure limit.
MAX_RECLAIM_RETRIES = 16
#: kswapd's reclaim priorities DEF_PRIORITY (12) down to 1.
DEF_PRIORITY = 12

declare(
    "ALLOC-POL-050", "Page kinds and what reclaim and compaction may do with them",
    """
    An allocated block holds one kind of memory: ``anon`` (MOVABLE; reclaimable by swapping
    out, migratable), ``file`` (page cache, MOVABLE; reclaimable by dropping, migratable),
    ``slab`` (reclaimable slab, RECLAIMABLE; freed by shrinkers, not migratable) or ``kernel``
    (UNMOVABLE; neither). Its age is the allocation clock; reclaim takes older pages first.
    Blocks allocated through the core API without a kind count as ``kernel`` memory.
    """,
    "mm/vmscan.c:shrink_lruvec,shrink_slab; mm/migrate.c @ v6.18", obj=KIND_MIGRATETYPE,
    module=__name__)


@attrs.frozen(order=True)
class Page:
    """An allocated block and its content."""

    pfn: int
    order: int
    kind: str
    age: int


@attrs.frozen
class Memory:
    """A zone plus what its allocated blocks hold, and the daemons' pending wake-ups.

    ``kswapd_order``/``kcompactd_order`` are -1 while the daemon sleeps. ``vmstat`` holds the
    event counters by their /proc/vmstat names; it is not part of the state's identity (two
    states that differ only in history compare equal).
    """

    zone: Zone
    pages: tuple[Page, ...] = ()
    clock: int = 0
    #: Whether anonymous memory can be swapped out (reclaimed).
    swap: bool = True
    kswapd_order: int = -1
    kcompactd_order: int = -1
    vmstat: tuple[tuple[str, int], ...] = attrs.field(default=(), eq=False, repr=False)

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return self.zone.config

    def stat(self, name: str) -> int:
        return dict(self.vmstat).get(name, 0)


class MemWork:
    """The mutable working copy of a :class:`Memory` (wraps the zone's :class:`Work`)."""

    def __init__(self, m: Memory) -> None:
        self.w = Work(m.zone)
        self.pages: dict[int, Page] = {p.pfn: p for p in m.pages}
        self.clock = m.clock
        self.swap = m.swap
        self.kswapd_order = m.kswapd_order
        self.kcompactd_order = m.kcompactd_order
        self.stats: Counter[str] = Counter(dict(m.vmstat))

    @property
    def variant(self) -> str:
        return self.w.config.variant

    def has(self, feature: str) -> bool:
        return alloc_has(self.w.config.variant, feature)

    @property
    def defrag_mode(self) -> bool:
        return bool(self.w.config.defrag_mode)

    def freeze(self) -> Memory:
        return Memory(self.w.freeze(), tuple(sorted(self.pages.values())), self.clock,
                      self.swap, self.kswapd_order, self.kcompactd_order,
                      tuple(sorted((k, v) for k, v in self.stats.items() if v)))


@rule("ALLOC-INV-050", "Contents sit in allocated blocks of their kind's migratetype",
      "mm/page_alloc.c; mm/vmscan.c @ v6.18")
def memory_consistent(m: Memory) -> list[str]:
    """
    Every block with content is an allocated block of the zone with the same order, and was
    allocated with its kind's migratetype (ALLOC-POL-050; UNMOVABLE for every kind when
    mobility grouping is off); every age is below the allocation clock; the daemons'
    pending orders lie in -1..MAX_PAGE_ORDER. Returns the violations.
    """
    z = m.zone
    cfg = z.config
    allocated = {a.pfn: a for a in z.allocated}
    out = []
    for p in m.pages:
        a = allocated.get(p.pfn)
        want = 0 if cfg.page_group_by_mobility_disabled else KIND_MIGRATETYPE.get(p.kind, -1)
        if a is None or a.order != p.order or a.migratetype != want:
            out.append(f"{p.kind} page at pfn {p.pfn} order {p.order} is not an allocated "
                       f"block of migratetype {want} ({a})")
        if not 0 <= p.age < max(m.clock, 1) and m.clock:
            out.append(f"page at pfn {p.pfn} is younger than the clock ({p.age} >= {m.clock})")
    for name, order in (("kswapd", m.kswapd_order), ("kcompactd", m.kcompactd_order)):
        if not -1 <= order <= cfg.max_page_order:
            out.append(f"{name} pending order {order} out of range")
    return out


def free_block(w: Work, pfn: int, order: int, cpu: int = 0) -> None:
    """``__free_frozen_pages`` of an allocated block (ALLOC-OP-034 on the working copy)."""
    free_pages_work(w, pfn, order, cpu)


def free_page(mw: MemWork, pfn: int, cpu: int = 0) -> None:
    """Free a block with content (its owner unmapped or freed it)."""
    p = mw.pages.pop(pfn, None)
    if p is None:
        raise SpecError(f"pfn {pfn} holds no page")
    free_block(mw.w, pfn, p.order, cpu)


def drain_all_pages(w: Work) -> None:
    """``drain_all_pages(NULL)``: every CPU's per-CPU lists back to the buddy."""
    for cpu in range(w.config.nr_cpus):
        drain_pages_zone(w, cpu)


def zone_reclaimable_pages(mw: MemWork) -> int:
    """Pages reclaim could free: file and slab always, anon only with swap."""
    return sum(1 << p.order for p in mw.pages.values() if _reclaimable(mw, p))


def _reclaimable(mw: MemWork, p: Page) -> bool:
    return p.kind in (KIND_FILE, KIND_SLAB) or (p.kind == KIND_ANON and mw.swap)


@rule("ALLOC-OP-050", "Reclaim: oldest reclaimable pages first, anon:file by swappiness",
      "mm/vmscan.c:shrink_node,get_scan_count,shrink_folio_list,shrink_slab @ v6.18")
def shrink_node(mw: MemWork, nr_to_reclaim: int, kswapd: bool) -> int:
    """
    Reclaim frees up to ``nr_to_reclaim`` pages from the allocated blocks whose kind is
    reclaimable (ALLOC-POL-050; anon only with swap). The anonymous share of the target is
    ``nr_to_reclaim * swappiness / 200`` (swappiness 60), the rest is file pages and
    reclaimable slab; if one side runs short the other makes up the difference. Within a
    side, pages go oldest first (lowest age, then lowest pfn). Each freed block counts as
    scanned and reclaimed (``pgscan_kswapd``/``pgsteal_kswapd`` or ``pgscan_direct``/
    ``pgsteal_direct``); anonymous pages count ``pswpout``, slab pages ``slabs_scanned``.
    Freed blocks go through the ordinary free path (per-CPU lists for per-CPU orders) on
    CPU 0. Returns the number of pages reclaimed.
    """
    anon = sorted((p for p in mw.pages.values() if p.kind == KIND_ANON and mw.swap),
                  key=lambda p: (p.age, p.pfn))
    file = sorted((p for p in mw.pages.values() if p.kind in (KIND_FILE, KIND_SLAB)),
                  key=lambda p: (p.age, p.pfn))
    anon_target = nr_to_reclaim * SWAPPINESS // 200
    chosen: list[Page] = []
    got = 0
    for p in anon:
        if got >= anon_target:
            break
        chosen.append(p)
        got += 1 << p.order
    for p in file:
        if got >= nr_to_reclaim:
            break
        chosen.append(p)
        got += 1 << p.order
    if got < nr_to_reclaim:
        for p in anon[len([c for c in chosen if c.kind == KIND_ANON]):]:
            if got >= nr_to_reclaim:
                break
            chosen.append(p)
            got += 1 << p.order
    suffix = "kswapd" if kswapd else "direct"
    for p in chosen:
        free_page(mw, p.pfn)
        n = 1 << p.order
        mw.stats[f"pgscan_{suffix}"] += n
        mw.stats[f"pgsteal_{suffix}"] += n
        if p.kind == KIND_ANON:
            mw.stats["pswpout"] += n
        elif p.kind == KIND_SLAB:
            mw.stats["slabs_scanned"] += n
    return got


@rule("ALLOC-POL-051", "kswapd's balance goal",
      "mm/vmscan.c:pgdat_balanced @ v6.18")
def pgdat_balanced(w: Work, order: int, variant_has_blocks: bool) -> bool:
    """
    The node is balanced when the zone passes ``__zone_watermark_ok`` at ``order`` against
    the **high** watermark (with its boost) with no ALLOC flags. Without defrag_mode the free
    count is NR_FREE_PAGES. With defrag_mode and the series' watermark patch (a211c6550efc),
    and only for order > 0 (the 6.15-rc3 fix "fix kswapd exit condition in defrag_mode"), the
    free count is NR_FREE_PAGES_BLOCKS: kswapd works until whole free pageblocks meet the mark.
    """
    mark = w.wmark_pages(WMARK_HIGH)
    free = w.nr_free_pages
    if variant_has_blocks and w.config.defrag_mode and order > 0:
        free = w.nr_free_pages_blocks
    return zone_watermark_ok(w, order, mark, 0, free)


def _blocks_goal(mw: MemWork) -> bool:
    return mw.has("pageblock_watermarks")


@rule("ALLOC-OP-051", "Waking kswapd",
      "mm/page_alloc.c:wake_all_kswapds; mm/vmscan.c:wakeup_kswapd @ v6.18")
def wake_all_kswapds(mw: MemWork, order: int, gfp: int) -> None:
    """
    The slow path wakes kswapd for ``order``; with defrag_mode and the series' kswapd patch
    (101f9d666e4d) for ``max(order, pageblock_order)``. kswapd's pending order only grows. A
    node that is already balanced at that order and not boosted is not woken; a request that
    cannot reclaim directly then wakes kcompactd instead (for that order).
    """
    from spec.constants import __GFP_DIRECT_RECLAIM

    w = mw.w
    reclaim_order = order
    if mw.defrag_mode and mw.has("kswapd_pageblock_order"):
        reclaim_order = max(order, w.config.pageblock_order)
    if pgdat_balanced(w, reclaim_order, _blocks_goal(mw)) and not w.watermark_boost:
        if not gfp & __GFP_DIRECT_RECLAIM:
            mw.kcompactd_order = max(mw.kcompactd_order, reclaim_order)
        return
    mw.kswapd_order = max(mw.kswapd_order, reclaim_order)


def compact_gap(order: int) -> int:
    """``compact_gap()``: compaction needs twice the request in free base pages."""
    return 2 << order


@rule("ALLOC-OP-052", "kswapd: balance_pgdat",
      "mm/vmscan.c:balance_pgdat,kswapd_shrink_node,kswapd_try_to_sleep @ v6.18")
def balance_pgdat(mw: MemWork) -> None:
    """
    A woken kswapd takes its pending order and reclaims while the zone is boosted or not
    balanced (ALLOC-POL-051), at most DEF_PRIORITY passes; each pass asks for
    ``max(high_wmark, SWAP_CLUSTER_MAX)`` pages (ALLOC-OP-050). Once it has reclaimed the
    compaction gap ``2 << order``, it drops to order 0 (the contiguity work is kcompactd's).
    A pass that reclaims nothing ends the run. A boosted zone's boost is cleared afterwards
    and kcompactd is woken for pageblock_order; a high-order run wakes kcompactd for its
    order. kswapd then sleeps (its pending order is cleared). Counts ``pageoutrun``.
    """
    w = mw.w
    if mw.kswapd_order < 0:
        return
    alloc_order = order = mw.kswapd_order
    mw.kswapd_order = -1
    mw.stats["pageoutrun"] += 1
    boosted = w.watermark_boost > 0
    nr_reclaimed = 0
    for _ in range(DEF_PRIORITY):
        if not boosted and pgdat_balanced(w, order, _blocks_goal(mw)):
            break
        if boosted and pgdat_balanced(w, order, _blocks_goal(mw)) and nr_reclaimed >= \
                w.watermark_boost:
            break
        nr_to_reclaim = max(w.wmark_pages(WMARK_HIGH), SWAP_CLUSTER_MAX)
        got = shrink_node(mw, nr_to_reclaim, kswapd=True)
        drain_all_pages(w)
        nr_reclaimed += got
        if order and nr_reclaimed >= compact_gap(order):
            order = 0
        if not got:
            break
    if boosted:
        w.watermark_boost = 0
        mw.kcompactd_order = max(mw.kcompactd_order, w.config.pageblock_order)
    if alloc_order > 0:
        mw.kcompactd_order = max(mw.kcompactd_order, alloc_order)


__all__ = ["memory_consistent", "Memory", "MemWork", "Page", "KINDS", "KIND_ANON", "KIND_FILE",
           "KIND_SLAB", "KIND_KERNEL", "KIND_MIGRATETYPE", "shrink_node", "balance_pgdat",
           "pgdat_balanced", "wake_all_kswapds", "free_page", "free_block", "drain_all_pages"]
