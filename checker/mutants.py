"""Deliberately broken twins of the reference: each must be caught by the lockstep fuzzer.

Every mutant changes one kernel rule the way a plausible patch could, and names the rule it
breaks. ``mmspec fuzz alloc --impl mutant:NAME`` runs one; the tests require every one to be
caught within 60 seconds with a shrunk, runnable counterexample.
"""

from __future__ import annotations

from typing import Any

from reference import Zone
from reference.page_alloc import FPI_TO_TAIL, NOT_HEAD, PAGE_BUDDY
from spec.constants import (
    ALLOC_KSWAPD,
    ALLOC_NOFRAGMENT,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
)
from spec.zone import SpecError


class StealUnderNofragment(Zone):
    """Breaks ALLOC-OP-013 / ALLOC-PROP-001: falls back to ``__rmqueue_steal`` even under
    ALLOC_NOFRAGMENT, polluting pageblocks that defrag_mode promised to keep clean."""

    def _rmqueue(self, order: int, mt: int, alloc_flags: int, mode: list[int]) -> int | None:
        page = super()._rmqueue(order, mt, alloc_flags, mode)
        if page is None and alloc_flags & ALLOC_NOFRAGMENT:
            page = self._rmqueue_steal(order, mt)
        return page


class MergeAcrossIsolate(Zone):
    """Breaks ALLOC-OP-002: merges a freed block with its free buddy at or above
    pageblock_order even when one of them is ISOLATE, CMA or HIGHATOMIC (the check that keeps
    isolated ranges and reserves out of other types' free lists is gone)."""

    def _merge_and_add(self, off: int, order: int, mt: int, fpi_flags: int) -> None:
        state, eff = self._state, self._pb_eff
        nxt, prv, nr_free = self._next, self._prev, self._nr_free
        n, pbo, maxo = self._n, self._pbo, self._maxo
        buddy = 0
        while order < maxo:
            buddy = off ^ (1 << order)
            if buddy >= n or state[buddy] != PAGE_BUDDY | order << 2:
                break
            buddy_mt = eff[buddy >> pbo] if order >= pbo else mt
            # The mutation: no "types differ and one is not mergeable" stop here.
            if order >= pbo and buddy_mt != MIGRATE_ISOLATE:
                self.nr_free_pages_blocks -= 1 << order
            nxt_b: int = nxt[buddy]
            prv_b: int = prv[buddy]
            nxt[prv_b] = nxt_b
            prv[nxt_b] = prv_b
            state[buddy] = NOT_HEAD | order << 2
            nr_free[order] -= 1
            if buddy_mt != mt:
                if buddy_mt == MIGRATE_ISOLATE:
                    for pb in range(buddy >> pbo, (buddy >> pbo) + (1 << (order - pbo))):
                        self._set_pageblock_isolate(pb, False)
                self._change_pageblock_range(buddy, order, mt)
            off &= buddy
            order += 1
        tail = bool(fpi_flags & FPI_TO_TAIL)
        if not tail and order < maxo - 1:
            higher = (buddy & off) ^ (1 << (order + 1))
            tail = higher < n and state[higher] == PAGE_BUDDY | (order + 1) << 2
        self._add_to_free_list(off, order, mt, tail)


class ClaimWholeBlockThreshold(Zone):
    """Breaks ALLOC-POL-031: claims a pageblock only when a whole pageblock's worth of pages
    is free or compatible, instead of half of one."""

    def _try_to_claim_block(self, off: int, current_order: int, order: int, start_type: int,
                            block_type: int, alloc_flags: int) -> int | None:
        if current_order >= self._pbo:
            return super()._try_to_claim_block(off, current_order, order, start_type,
                                               block_type, alloc_flags)
        start = off & ~(self._pbnr - 1)
        free_pages, movable_pages = self._count_block_pages(start)
        if start_type == MIGRATE_MOVABLE:
            alike = movable_pages
        elif block_type == MIGRATE_MOVABLE:
            alike = self._pbnr - (free_pages + movable_pages)
        else:
            alike = 0
        if free_pages + alike >= self._pbnr or self._mobility_disabled:
            return super()._try_to_claim_block(off, current_order, order, start_type,
                                               block_type, alloc_flags)
        # Below the (wrong) threshold: boost as the kernel does, then give up.
        if self._boost_watermark() and alloc_flags & ALLOC_KSWAPD:
            self._boosted = True
        return None


class ForgetHighatomicCounter(Zone):
    """Breaks ALLOC-INV-006: ``account_freepages`` forgets ``nr_free_highatomic``, so the
    watermark check (ALLOC-POL-012) subtracts a stale highatomic count."""

    def _account_freepages(self, nr_pages: int, mt: int) -> None:
        if mt == MIGRATE_HIGHATOMIC:
            self.nr_free_pages += nr_pages
            return
        super()._account_freepages(nr_pages, mt)


class RefillAtHead(Zone):
    """Breaks ALLOC-OP-020: ``rmqueue_bulk`` puts refilled blocks at the head of the per-CPU
    list (reversing their order) instead of appending them at the tail."""

    def _rmqueue_bulk(self, order: int, count: int, lst: list[int], mt: int,
                      alloc_flags: int) -> int:
        # The reference's per-CPU lists are stored tail first (head at the end): ``fresh``
        # holds the refill tail first, and each block pushed on the head in refill order
        # reverses it.
        fresh: list[int] = []
        taken = super()._rmqueue_bulk(order, count, fresh, mt, alloc_flags)
        lst.extend(reversed(fresh))
        return taken


class MovableFallsBackToUnmovableFirst(Zone):
    """Breaks ALLOC-POL-004: a MOVABLE request tries UNMOVABLE blocks before RECLAIMABLE
    ones (a swapped row of the fallback table)."""

    def _find_suitable_fallback(self, order: int, mt: int, claimable: bool) -> int:
        found = super()._find_suitable_fallback(order, mt, claimable)
        if mt != MIGRATE_MOVABLE or found < 0:
            return found
        base = self._n + order * 6
        for fallback in (MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE):
            if self._next[base + fallback] != base + fallback:
                return fallback
        raise SpecError("unreachable: super() found a fallback")


class HighatomicReserveUnbounded(Zone):
    """Breaks ALLOC-OP-014: ``reserve_highatomic_pageblock`` forgets its bound
    ``ALIGN(managed / 100, pageblock_nr_pages)`` and keeps reserving blocks for every
    successful high-order atomic allocation. Only zones of 100 pageblocks or more reserve at
    all, so catching it needs the fuzzer's large zones."""

    def _reserve_highatomic_pageblock(self, off: int, order: int) -> None:
        saved = self._highatomic_max
        self._highatomic_max = self._n
        try:
            super()._reserve_highatomic_pageblock(off, order)
        finally:
            self._highatomic_max = saved


MUTANTS: dict[str, type[Zone]] = {
    "steal-under-nofragment": StealUnderNofragment,
    "merge-across-isolate": MergeAcrossIsolate,
    "claim-whole-block-threshold": ClaimWholeBlockThreshold,
    "forget-highatomic-counter": ForgetHighatomicCounter,
    "refill-at-head": RefillAtHead,
    "movable-falls-back-to-unmovable-first": MovableFallsBackToUnmovableFirst,
    "highatomic-reserve-unbounded": HighatomicReserveUnbounded,
}


# --- the slow path, reclaim and compaction (``mmspec fuzz slowpath --impl mutant:NAME``) -------

def _slowpath_mutants() -> dict[str, type]:
    import spec.constants as C
    from reference.vmscan import Memory

    class NoReclaimRetryBound(Memory):
        """Breaks ALLOC-POL-055: should_reclaim_retry keeps retrying past
        MAX_RECLAIM_RETRIES no-progress loops while the watermark check would pass."""

        def _should_reclaim_retry(self, order: int, alloc_flags: int, progress: bool,
                                  loops: int, mt: int) -> tuple[bool, int]:
            ret, loops = super()._should_reclaim_retry(order, alloc_flags, progress, 0, mt)
            return ret, loops

    class DefragRetryUnchecked(Memory):
        """Breaks ALLOC-OP-057 / ALLOC-PROP-050: the first posting's ``alloc_flags &=
        ALLOC_NOFRAGMENT`` retry, taken whenever defrag_mode is on, in every variant."""

        def __init__(self, cfg: Any, swap: bool = True) -> None:
            super().__init__(cfg, swap)
            self.features.discard("atomic_fix")
            self.features.add("defrag_retry_unchecked")

    class ReclaimNewestFirst(Memory):
        """Breaks ALLOC-OP-050: reclaim takes the youngest pages first (an MRU, not LRU)."""

        def shrink_node(self, nr_to_reclaim: int, kswapd: bool) -> int:
            saved = self.pages
            self.pages = {pfn: (o, k, -age) for pfn, (o, k, age) in saved.items()}
            try:
                return super().shrink_node(nr_to_reclaim, kswapd)
            finally:
                self.pages = {pfn: saved[pfn] for pfn in self.pages}

    class NoCapture(Memory):
        """Breaks ALLOC-OP-053: direct compaction never captures the block it freed."""

        compaction_capture = False

    class KswapdBalancesInBasePages(Memory):
        """Breaks ALLOC-POL-051: kswapd's defrag_mode goal ignores NR_FREE_PAGES_BLOCKS
        (balances to the high watermark in base pages even for pageblock orders)."""

        def __init__(self, cfg: Any, swap: bool = True) -> None:
            super().__init__(cfg, swap)
            self.features.discard("pageblock_watermarks")

    class AtomicFailsUnderDefrag(Memory):
        """Breaks ALLOC-PROP-051 in v6.18+atomic-fix: GFP_ATOMIC keeps ALLOC_NOFRAGMENT and
        fails at the no-direct-reclaim exit (the bug the 2026 fix removed)."""

        def __init__(self, cfg: Any, swap: bool = True) -> None:
            super().__init__(cfg, swap)
            self.features.discard("atomic_fix")

    from reference import compaction

    class _Patched(Memory):
        """Runs every operation with some functions of reference.compaction replaced."""

        patches: dict[str, Any] = {}

        def _with(self, fn: Any, *args: Any) -> Any:
            saved = {k: getattr(compaction, k) for k in self.patches}
            for k, v in self.patches.items():
                setattr(compaction, k, v)
            try:
                return fn(*args)
            finally:
                for k, v in saved.items():
                    setattr(compaction, k, v)

        def alloc_page(self, *args: Any) -> Any:
            return self._with(super().alloc_page, *args)

        def balance_pgdat(self) -> None:
            self._with(super().balance_pgdat)

        def kcompactd(self) -> None:
            self._with(super().kcompactd)

        def compact(self, *args: Any) -> Any:
            return self._with(super().compact, *args)

    _suit, _finished = compaction._suit, compaction._finished
    compaction_try = compaction.try_to_compact_pages

    class CompactGapOneRequest(_Patched):
        """Breaks ALLOC-POL-052: compaction asks for the request's size in free base pages
        above the watermark, not twice it (compact_gap)."""

        patches = {"compaction_suitable": lambda m, order, mark, free: m.watermark_ok(
            0, mark + (1 << order), C.ALLOC_CMA, free)}

    class CompactionIgnoresSuitability(_Patched):
        """Breaks ALLOC-POL-053: compaction runs even when too few free base pages are left
        to migrate into (COMPACT_SKIPPED is never returned)."""

        patches = {"_suit": lambda m, order, flags, kcd: (
            r if (r := _suit(m, order, flags, kcd)) != "COMPACT_SKIPPED" else "COMPACT_CONTINUE")}

    class FinishOnlyOnOwnType(_Patched):
        """Breaks ALLOC-POL-054: compaction keeps going until a block of the request's own
        migratetype is free, ignoring free pageblocks and claimable fallbacks."""

        @staticmethod
        def _finished_own(m: Any, cc: Any, mpb: int, fpb: int) -> str:
            z = m.zone
            if mpb >= fpb:
                return "COMPACT_COMPLETE"
            if cc.captured is not None:
                return "COMPACT_SUCCESS"
            if not cc.direct:
                return _finished(m, cc, mpb, fpb)
            for order in range(cc.order, z._norders):
                head = z._n + order * 6 + cc.mt
                if z._next[head] != head:
                    return "COMPACT_SUCCESS"
            return "COMPACT_CONTINUE"

        patches = {"_finished": _finished_own}

    class DirectCompactionAlwaysAsync(_Patched):
        """Breaks ALLOC-OP-054: direct compaction runs in async mode at every priority (only
        same-mobility source blocks, never ignoring block suitability)."""

        patches = {"try_to_compact_pages": lambda m, order, mt, flags, prio:
                   compaction_try(m, order, mt, flags, compaction.INIT_COMPACT_PRIORITY)}

    class KcompactdIdle(Memory):
        """Breaks ALLOC-OP-055: a woken kcompactd goes back to sleep without compacting."""

        def kcompactd(self) -> None:
            if self.kcompactd_order >= 0:
                self.kcompactd_order = -1
                self.stats["compact_daemon_wake"] += 1

    class WakeKswapdAtRequestOrder(Memory):
        """Breaks ALLOC-OP-051: kswapd is woken for the request's order even with
        defrag_mode and the kswapd/kcompactd assistance patch."""

        def __init__(self, cfg: Any, swap: bool = True) -> None:
            super().__init__(cfg, swap)
            self.features.discard("kswapd_pageblock_order")

    class KswapdKeepsBoost(Memory):
        """Breaks ALLOC-OP-052: kswapd reclaims for a boosted zone but leaves the boost in
        place (and does not hand the pageblock to kcompactd)."""

        def balance_pgdat(self) -> None:
            z = self.zone
            boost = z._boost
            z._boost = 0
            z._update_high_mark()
            try:
                super().balance_pgdat()
            finally:
                z._boost = boost
                z._update_high_mark()

    class NoDrainAfterReclaim(Memory):
        """Breaks ALLOC-OP-056: after direct reclaim fails to yield a page, neither a
        highatomic block is given back nor the per-CPU lists drained before the retry."""

        def _direct_reclaim(self, gfp: int, order: int, alloc_flags: int, cpu: int,
                            mt: int) -> tuple[int | None, bool]:
            self.stats["allocstall"] += 1
            progress = self.shrink_node(C.SWAP_CLUSTER_MAX, False) > 0
            return self._gpff(gfp, order, alloc_flags, cpu), progress

    class ClockOnlyOnSuccess(Memory):
        """Breaks ALLOC-OP-058: the allocation clock (page ages) advances only when the
        allocation succeeds."""

        def alloc_page(self, gfp: int, order: int, kind: str, cpu: int = 0
                       ) -> tuple[str, int | None]:
            outcome, page = super().alloc_page(gfp, order, kind, cpu)
            if page is None:
                self.clock -= 1
            return outcome, page

    class SlabNotReclaimable(Memory):
        """Breaks ALLOC-POL-050: reclaimable slab is treated as unmovable kernel memory that
        shrinkers cannot free."""

        def reclaimable(self, kind: str) -> bool:
            return kind == "file" or (kind == "anon" and self.swap)

        def shrink_node(self, nr_to_reclaim: int, kswapd: bool) -> int:
            saved = {p: v for p, v in self.pages.items() if v[1] == "slab"}
            for p in saved:
                del self.pages[p]
            try:
                return super().shrink_node(nr_to_reclaim, kswapd)
            finally:
                self.pages.update(saved)

    class NoRetryAfterSkippedCompaction(Memory):
        """Breaks ALLOC-POL-056: after reclaim progress, a skipped compaction never retries,
        even when reclaiming everything reclaimable would make compaction suitable."""

        def _should_compact_retry(self, order: int, result: str, retries: int,
                                  prio: int) -> tuple[bool, int, int]:
            if result == compaction.COMPACT_SKIPPED:
                return False, retries, prio
            return super()._should_compact_retry(order, result, retries, prio)

    return {"compact-gap-one-request": CompactGapOneRequest,
            "compaction-ignores-suitability": CompactionIgnoresSuitability,
            "finish-only-on-own-type": FinishOnlyOnOwnType,
            "direct-compaction-always-async": DirectCompactionAlwaysAsync,
            "kcompactd-idle": KcompactdIdle,
            "wake-kswapd-at-request-order": WakeKswapdAtRequestOrder,
            "kswapd-keeps-boost": KswapdKeepsBoost,
            "no-drain-after-reclaim": NoDrainAfterReclaim,
            "clock-only-on-success": ClockOnlyOnSuccess,
            "slab-not-reclaimable": SlabNotReclaimable,
            "no-retry-after-skipped-compaction": NoRetryAfterSkippedCompaction,
            "no-reclaim-retry-bound": NoReclaimRetryBound,
            "defrag-retry-unchecked": DefragRetryUnchecked,
            "reclaim-newest-first": ReclaimNewestFirst,
            "no-capture": NoCapture,
            "kswapd-balances-in-base-pages": KswapdBalancesInBasePages,
            "atomic-fails-under-defrag": AtomicFailsUnderDefrag}


SLOWPATH_MUTANTS: dict[str, Any] = _slowpath_mutants()
