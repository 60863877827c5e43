"""Reference: memory contents, reclaim, kswapd and the allocator slow path.

The same behaviour as ``spec.vmscan`` and ``spec.slowpath`` (ALLOC-OP-050..058,
ALLOC-POL-050..056), written the way the kernel writes ``__alloc_pages_slowpath``: one
function with its ``restart``/``retry``/``nopage`` labels as loops, on the reference zone's
arrays, with a per-pfn content table. ``abstract()`` returns plain data; the checker turns it
into a ``spec.vmscan.Memory``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import spec.constants as _c
from reference import compaction
from reference.page_alloc import Zone
from spec.constants import alloc_flags_nofragment, gfp_migratetype, gfp_to_alloc_flags
from spec.zone import SpecError, ZoneConfig, alloc_base_variant, alloc_has

# GFP bits under names that class bodies do not mangle
GFP_DIRECT_RECLAIM = _c.__GFP_DIRECT_RECLAIM
GFP_IO = _c.__GFP_IO
GFP_KSWAPD_RECLAIM = _c.__GFP_KSWAPD_RECLAIM
GFP_MEMALLOC = _c.__GFP_MEMALLOC
GFP_NOFAIL = _c.__GFP_NOFAIL
GFP_NOMEMALLOC = _c.__GFP_NOMEMALLOC
GFP_NORETRY = _c.__GFP_NORETRY
GFP_RETRY_MAYFAIL = _c.__GFP_RETRY_MAYFAIL
GFP_THISNODE = _c.__GFP_THISNODE

ANON, FILE, SLAB, KERNEL = "anon", "file", "slab", "kernel"
MAX_RECLAIM_RETRIES = 16
MAX_COMPACT_RETRIES = 16
SWAPPINESS = 60
DEF_PRIORITY = 12
#: the slow path gives up looking for a way out after this many retries (a livelock)
LIVELOCK_RETRIES = 2000


class Memory:
    """A reference zone plus its contents: pfn -> (order, kind, age)."""

    #: a direct compactor captures the block its migrations free (``compaction_capture``)
    compaction_capture = True

    def __init__(self, cfg: ZoneConfig, swap: bool = True) -> None:
        self.zone = Zone(cfg)
        self.cfg = cfg
        self.pages: dict[int, tuple[int, str, int]] = {}
        self.clock = 0
        self.swap = swap
        self.kswapd_order = -1
        self.kcompactd_order = -1
        self.stats: Counter[str] = Counter()
        self.defrag_mode = bool(cfg.defrag_mode)
        self.features = {f for f in ("pageblock_watermarks", "kswapd_pageblock_order",
                                     "atomic_fix", "defrag_retry_unchecked")
                         if alloc_has(cfg.variant, f)}
        self.base_variant = alloc_base_variant(cfg.variant)
        self.mobility_disabled = cfg.page_group_by_mobility_disabled

    # --- helpers over the zone ---------------------------------------------------------------

    def wmark(self, which: int) -> int:
        z = self.zone
        return z._wmark[which] + z._boost

    def watermark_ok(self, order: int, mark: int, alloc_flags: int, free: int) -> bool:
        return self.zone._zone_watermark_ok(order, mark, alloc_flags, free)

    def drain_all(self) -> None:
        for cpu in range(self.cfg.nr_cpus):
            self.zone.drain_pages(cpu)

    def free_page(self, pfn: int, cpu: int = 0) -> None:
        entry = self.pages.pop(pfn, None)
        if entry is None:
            raise SpecError(f"pfn {pfn} holds no page")
        self.zone.free_pages(pfn, entry[0], cpu)

    def _gpff(self, gfp: int, order: int, alloc_flags: int, cpu: int) -> int | None:
        page = self.zone.get_page_from_freelist(gfp, order, alloc_flags, cpu)
        if page is not None:
            self.stats["pgalloc"] += 1 << order
        return page

    # --- reclaim (ALLOC-OP-050) ----------------------------------------------------------------

    def reclaimable(self, kind: str) -> bool:
        return kind in (FILE, SLAB) or (kind == ANON and self.swap)

    def zone_reclaimable_pages(self) -> int:
        return sum(1 << o for o, k, _ in self.pages.values() if self.reclaimable(k))

    def shrink_node(self, nr_to_reclaim: int, kswapd: bool) -> int:
        items = self.pages.items()
        anon = sorted(((age, pfn, o) for pfn, (o, k, age) in items if k == ANON and self.swap))
        file = sorted(((age, pfn, o) for pfn, (o, k, age) in items if k in (FILE, SLAB)))
        target = nr_to_reclaim * SWAPPINESS // 200
        chosen: list[int] = []
        got = 0
        i = 0
        while i < len(anon) and got < target:
            chosen.append(anon[i][1])
            got += 1 << anon[i][2]
            i += 1
        for _, pfn, o in file:
            if got >= nr_to_reclaim:
                break
            chosen.append(pfn)
            got += 1 << o
        while i < len(anon) and got < nr_to_reclaim:
            chosen.append(anon[i][1])
            got += 1 << anon[i][2]
            i += 1
        suffix = "kswapd" if kswapd else "direct"
        for pfn in chosen:
            order, kind, _ = self.pages[pfn]
            self.free_page(pfn)
            n = 1 << order
            self.stats["pgscan_" + suffix] += n
            self.stats["pgsteal_" + suffix] += n
            if kind == ANON:
                self.stats["pswpout"] += n
            elif kind == SLAB:
                self.stats["slabs_scanned"] += n
        return got

    # --- kswapd (ALLOC-POL-051, ALLOC-OP-051, ALLOC-OP-052) ---------------------------------

    def pgdat_balanced(self, order: int) -> bool:
        z = self.zone
        free = z.nr_free_pages
        if "pageblock_watermarks" in self.features and self.defrag_mode and order > 0:
            free = z.nr_free_pages_blocks
        return self.watermark_ok(order, self.wmark(_c.WMARK_HIGH), 0, free)

    def wake_all_kswapds(self, order: int, gfp: int) -> None:
        reclaim_order = order
        if self.defrag_mode and "kswapd_pageblock_order" in self.features:
            reclaim_order = max(order, self.cfg.pageblock_order)
        if self.pgdat_balanced(reclaim_order) and not self.zone._boost:
            if not gfp & GFP_DIRECT_RECLAIM:
                self.kcompactd_order = max(self.kcompactd_order, reclaim_order)
            return
        self.kswapd_order = max(self.kswapd_order, reclaim_order)

    def balance_pgdat(self) -> None:
        if self.kswapd_order < 0:
            return
        z = self.zone
        alloc_order = order = self.kswapd_order
        self.kswapd_order = -1
        self.stats["pageoutrun"] += 1
        boosted = z._boost > 0
        nr_reclaimed = 0
        for _ in range(DEF_PRIORITY):
            balanced = self.pgdat_balanced(order)
            if balanced and (not boosted or nr_reclaimed >= z._boost):
                break
            got = self.shrink_node(max(self.wmark(_c.WMARK_HIGH), _c.SWAP_CLUSTER_MAX), True)
            self.drain_all()
            nr_reclaimed += got
            if order and nr_reclaimed >= 2 << order:
                order = 0
            if not got:
                break
        if boosted:
            z._boost = 0
            z._update_high_mark()
            self.kcompactd_order = max(self.kcompactd_order, self.cfg.pageblock_order)
        if alloc_order > 0:
            self.kcompactd_order = max(self.kcompactd_order, alloc_order)

    def kcompactd(self) -> None:
        compaction.kcompactd_do_work(self)

    def compact(self, order: int, mt: int, prio: int) -> tuple[str, int | None]:
        """One direct compaction run (ALLOC-OP-054) with WMARK_MIN flags."""
        return compaction.try_to_compact_pages(self, order, mt, _c.ALLOC_WMARK_MIN, prio)

    # --- the slow path (ALLOC-OP-056, ALLOC-OP-057, ALLOC-POL-055, ALLOC-POL-056) ----------

    def _direct_reclaim(self, gfp: int, order: int, alloc_flags: int, cpu: int,
                        mt: int) -> tuple[int | None, bool]:
        self.stats["allocstall"] += 1
        progress = self.shrink_node(_c.SWAP_CLUSTER_MAX, False) > 0
        page = self._gpff(gfp, order, alloc_flags, cpu)
        if page is None:
            self.zone.unreserve_highatomic_pageblock(mt, False)
            self.drain_all()
            page = self._gpff(gfp, order, alloc_flags, cpu)
        return page, progress

    def _direct_compact(self, gfp: int, order: int, alloc_flags: int, cpu: int, mt: int,
                        prio: int) -> tuple[int | None, str]:
        if not order:
            return None, compaction.COMPACT_SKIPPED
        result, captured = compaction.try_to_compact_pages(self, order, mt, alloc_flags, prio)
        if result == compaction.COMPACT_SKIPPED:
            return None, result
        page = captured
        if page is not None:
            self.stats["pgalloc"] += 1 << order
        else:
            page = self._gpff(gfp, order, alloc_flags, cpu)
        self.stats["compact_success" if page is not None else "compact_fail"] += 1
        return page, result

    def _should_reclaim_retry(self, order: int, alloc_flags: int, progress: bool,
                              loops: int, mt: int) -> tuple[bool, int]:
        if progress and order <= _c.PAGE_ALLOC_COSTLY_ORDER:
            loops = 0
        else:
            loops = min(loops + 1, MAX_RECLAIM_RETRIES + 1)
        ret = False
        if loops <= MAX_RECLAIM_RETRIES:
            available = self.zone_reclaimable_pages() + self.zone.nr_free_pages
            ret = self.watermark_ok(order, self.wmark(_c.WMARK_MIN), alloc_flags, available)
        if not ret:
            ret = self.zone.unreserve_highatomic_pageblock(mt, True)
        return ret, loops

    def _should_compact_retry(self, order: int, result: str, retries: int,
                              prio: int) -> tuple[bool, int, int]:
        if not order:
            return False, retries, prio
        if result == compaction.COMPACT_SKIPPED:
            available = self.zone_reclaimable_pages() + self.zone.nr_free_pages
            return (compaction.compaction_suitable(self, order, self.wmark(_c.WMARK_MIN),
                                                   available), retries, prio)
        if result == compaction.COMPACT_SUCCESS:
            max_retries = MAX_COMPACT_RETRIES
            if order > _c.PAGE_ALLOC_COSTLY_ORDER:
                max_retries //= 4
            retries += 1
            if retries <= max_retries:
                return True, retries, prio
        min_priority = (compaction.MIN_COMPACT_COSTLY_PRIORITY
                        if order > _c.PAGE_ALLOC_COSTLY_ORDER
                        else compaction.MIN_COMPACT_PRIORITY)
        if prio > min_priority:
            return True, 0, prio - 1
        return False, retries, prio

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> tuple[str, int | None]:
        """``__alloc_pages``: returns ("page", pfn), ("nopage", None) or ("oom", None)."""
        cfg = self.cfg
        if order > cfg.max_page_order:
            return "nopage", None
        mt = gfp_migratetype(gfp, self.mobility_disabled)
        flags = _c.ALLOC_WMARK_LOW | alloc_flags_nofragment(gfp, cfg.defrag_mode,
                                                            cfg.zone_is_normal_with_dma32)
        if mt == _c.MIGRATE_MOVABLE:
            flags |= _c.ALLOC_CMA
        page = self._gpff(gfp, order, flags, cpu)
        if page is not None:
            return "page", page
        can_direct_reclaim = bool(gfp & GFP_DIRECT_RECLAIM)
        can_compact = bool(gfp & GFP_IO)
        costly = order > _c.PAGE_ALLOC_COSTLY_ORDER
        reserve = 0
        if not gfp & GFP_NOMEMALLOC and gfp & GFP_MEMALLOC:
            reserve = _c.ALLOC_NO_WATERMARKS
        # restart:
        alloc_flags = gfp_to_alloc_flags(gfp, order, cfg.defrag_mode, self.base_variant)
        loops = retries = 0
        prio = compaction.DEF_COMPACT_PRIORITY
        result = compaction.COMPACT_SKIPPED
        progress = False
        if alloc_flags & _c.ALLOC_KSWAPD:
            self.wake_all_kswapds(order, gfp)
        page = self._gpff(gfp, order, alloc_flags, cpu)
        if page is not None:
            return "page", page
        nopage = False
        if (can_direct_reclaim and can_compact and (costly or (order and mt != _c.MIGRATE_MOVABLE))
                and not reserve):
            page, result = self._direct_compact(gfp, order, alloc_flags, cpu, mt,
                                                compaction.INIT_COMPACT_PRIORITY)
            if page is not None:
                return "page", page
            if costly and gfp & GFP_NORETRY:
                if (result in (compaction.COMPACT_SKIPPED, compaction.COMPACT_DEFERRED)
                        or gfp & GFP_THISNODE):
                    nopage = True
                prio = compaction.INIT_COMPACT_PRIORITY
        for _ in range(LIVELOCK_RETRIES):
            if not nopage:
                # retry:
                if alloc_flags & _c.ALLOC_KSWAPD:
                    self.wake_all_kswapds(order, gfp)
                if reserve:
                    alloc_flags = (reserve | (_c.ALLOC_CMA if mt == _c.MIGRATE_MOVABLE else 0)
                                   | (alloc_flags & _c.ALLOC_KSWAPD))
                page = self._gpff(gfp, order, alloc_flags, cpu)
                if page is not None:
                    return "page", page
                if not can_direct_reclaim:
                    if ("atomic_fix" in self.features and self.defrag_mode
                            and alloc_flags & _c.ALLOC_NOFRAGMENT
                            and gfp & GFP_KSWAPD_RECLAIM):
                        alloc_flags &= ~_c.ALLOC_NOFRAGMENT
                        continue
                    nopage = True
            if not nopage:
                page, progress = self._direct_reclaim(gfp, order, alloc_flags, cpu, mt)
                if page is not None:
                    return "page", page
                page, result = self._direct_compact(gfp, order, alloc_flags, cpu, mt, prio)
                if page is not None:
                    return "page", page
                if gfp & GFP_NORETRY or (costly and (
                        not can_compact or not gfp & GFP_RETRY_MAYFAIL)):
                    nopage = True
            if not nopage:
                retry, loops = self._should_reclaim_retry(order, alloc_flags, progress, loops,
                                                          mt)
                if retry:
                    continue
                if progress and can_compact:
                    retry, retries, prio = self._should_compact_retry(order, result, retries,
                                                                      prio)
                    if retry:
                        continue
                if self.defrag_mode:
                    if "defrag_retry_unchecked" in self.features:
                        alloc_flags &= _c.ALLOC_NOFRAGMENT
                        continue
                    if alloc_flags & _c.ALLOC_NOFRAGMENT:
                        alloc_flags &= ~_c.ALLOC_NOFRAGMENT
                        continue
                # __alloc_pages_may_oom
                page = self.zone.get_page_from_freelist(
                    gfp & ~GFP_DIRECT_RECLAIM, order,
                    _c.ALLOC_WMARK_HIGH | _c.ALLOC_CPUSET, cpu)
                if page is not None:
                    self.stats["pgalloc"] += 1 << order
                    return "page", page
                if (costly or gfp & (GFP_RETRY_MAYFAIL | GFP_THISNODE)) and \
                        not gfp & GFP_NOFAIL:
                    nopage = True
                else:
                    self.stats["oom_kill"] += 1
                    return "oom", None
            # nopage:
            if gfp & GFP_NOFAIL and can_direct_reclaim:
                page = self._gpff(gfp, order, _c.ALLOC_MIN_RESERVE | _c.ALLOC_CPUSET, cpu)
                if page is not None:
                    return "page", page
                nopage = False
                continue
            self.stats["allocfail"] += 1
            return "nopage", None
        raise SpecError(f"slow path loops (alloc_flags {alloc_flags:#x})")

    def alloc_page(self, gfp: int, order: int, kind: str, cpu: int = 0
                   ) -> tuple[str, int | None]:
        outcome, page = self.alloc_pages(gfp, order, cpu)
        if page is not None:
            self.pages[page] = (order, kind, self.clock)
        self.clock += 1
        return outcome, page

    def abstract(self) -> dict[str, Any]:
        """Plain data for the checker's abstraction function."""
        return {"zone": self.zone.abstract(),
                "pages": tuple(sorted((pfn, o, k, a) for pfn, (o, k, a) in self.pages.items())),
                "clock": self.clock, "swap": self.swap, "kswapd_order": self.kswapd_order,
                "kcompactd_order": self.kcompactd_order,
                "vmstat": tuple(sorted((k, v) for k, v in self.stats.items() if v))}


__all__ = ["Memory", "ANON", "FILE", "SLAB", "KERNEL"]
