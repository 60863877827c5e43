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


MUTANTS: dict[str, type[Zone]] = {
    "steal-under-nofragment": StealUnderNofragment,
    "merge-across-isolate": MergeAcrossIsolate,
    "claim-whole-block-threshold": ClaimWholeBlockThreshold,
    "forget-highatomic-counter": ForgetHighatomicCounter,
    "refill-at-head": RefillAtHead,
    "movable-falls-back-to-unmovable-first": MovableFallsBackToUnmovableFirst,
}


# --- the slow path, reclaim and compaction (``mmspec fuzz slowpath --impl mutant:NAME``) -------

def _slowpath_mutants() -> dict[str, type]:
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

    return {"no-reclaim-retry-bound": NoReclaimRetryBound,
            "defrag-retry-unchecked": DefragRetryUnchecked,
            "reclaim-newest-first": ReclaimNewestFirst,
            "no-capture": NoCapture,
            "kswapd-balances-in-base-pages": KswapdBalancesInBasePages,
            "atomic-fails-under-defrag": AtomicFailsUnderDefrag}


SLOWPATH_MUTANTS: dict[str, Any] = _slowpath_mutants()
