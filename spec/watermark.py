"""Watermarks, boost, reserves, and per-CPU list sizing.

The arithmetic is written so that it runs on Python ints (and, where it uses only + - * //
and comparisons, on Z3 terms for the proofs).
"""

from __future__ import annotations

from spec.constants import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_MASK,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_PCPTYPES,
    PAGE_SHIFT,
    SWAP_CLUSTER_MAX,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
)
from spec.rules import rule
from spec.zone import Work, ZoneConfig

MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8


@rule("ALLOC-POL-010", "Watermarks from min_free_kbytes and watermark_scale_factor",
      "mm/page_alloc.c:__setup_per_zone_wmarks @ v6.18")
def setup_per_zone_wmarks(min_free_kbytes: int, managed: int, lowmem_pages: int,
                          watermark_scale_factor: int) -> tuple[int, int, int, int]:
    """
    ``pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)``; a zone's share is
    ``tmp = pages_min * managed / lowmem_pages`` and WMARK_MIN = tmp (lowmem zones);
    ``delta = max(tmp >> 2, managed * watermark_scale_factor / 10000)``;
    LOW = MIN + delta, HIGH = LOW + delta, PROMO = HIGH + delta. The boost is reset to 0.
    """
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    tmp = pages_min * managed // lowmem_pages
    wmin = tmp
    delta = max(tmp >> 2, managed * watermark_scale_factor // 10000)
    low = wmin + delta
    high = low + delta
    return (wmin, low, high, high + delta)


def highmem_min_pages(managed: int) -> int:
    """WMARK_MIN of a HIGHMEM/MOVABLE zone: clamp(managed/1024, SWAP_CLUSTER_MAX, 128)."""
    return max(SWAP_CLUSTER_MAX, min(128, managed // 1024))


@rule("ALLOC-POL-011", "Per-CPU batch and high bounds",
      "mm/page_alloc.c:zone_batchsize,zone_highsize @ v6.12.117 (unchanged through 6.18)")
def pcp_batch_high(managed: int, low_wmark: int, nr_cpus: int,
                   percpu_pagelist_high_fraction: int) -> tuple[int, int, int]:
    """
    ``batch = min(managed >> 10, 256) / 4`` (at least 1), then
    ``rounddown_pow_of_two(batch + batch/2) - 1``, at least 1. ``high_min`` is the low
    watermark split over the node's CPUs, ``high_max`` is managed/8 split likewise, each at
    least ``batch * 4``; with ``percpu_pagelist_high_fraction`` both are managed/fraction.
    Returns (batch, high_min, high_max).
    """
    batch = min(managed >> 10, (1 << 20) >> PAGE_SHIFT) // 4
    if batch < 1:
        batch = 1
    b = batch + batch // 2
    batch = (1 << (b.bit_length() - 1)) - 1
    batch = max(1, batch)

    def highsize(total_pages: int) -> int:
        return max(total_pages // nr_cpus, batch << 2)

    if percpu_pagelist_high_fraction:
        high_min = highsize(managed // percpu_pagelist_high_fraction)
        return batch, high_min, high_min
    return (batch, highsize(low_wmark),
            highsize(managed // MIN_PERCPU_PAGELIST_HIGH_FRACTION))


def zone_wmarks(cfg: ZoneConfig) -> tuple[int, int, int, int]:
    return setup_per_zone_wmarks(cfg.effective_min_free_kbytes(), cfg.managed_pages,
                                 cfg.managed_pages, cfg.watermark_scale_factor)


@rule("ALLOC-POL-012", "Pages a request may not count as free",
      "mm/page_alloc.c:__zone_watermark_unusable_free @ v6.18")
def zone_watermark_unusable_free(order: int, alloc_flags: int, nr_free_highatomic: int,
                                 nr_free_cma_pages: int) -> int:
    """
    ``(1 << order) - 1`` pages are never usable for an order-``order`` request; a request
    without any ALLOC_RESERVES flag cannot use the free highatomic pages
    (``nr_free_highatomic``, the 6.12 fix that replaced the reserved count); one without
    ALLOC_CMA cannot use free CMA pages.
    """
    unusable = (1 << order) - 1
    if not alloc_flags & ALLOC_RESERVES:
        unusable += nr_free_highatomic
    if not alloc_flags & ALLOC_CMA:
        unusable += nr_free_cma_pages
    return unusable


@rule("ALLOC-POL-013", "Reserve reductions of the watermark",
      "mm/page_alloc.c:__zone_watermark_ok @ v6.18")
def reserve_adjusted_min(mark: int, alloc_flags: int) -> int:
    """
    With ALLOC_MIN_RESERVE (__GFP_HIGH) a request may go half way below the mark
    (``min -= min/2``), and a non-blocking one (ALLOC_NON_BLOCK with it, i.e. GFP_ATOMIC) a
    further quarter of what is left (``min -= min/4``); ALLOC_OOM halves again. ALLOC_NON_BLOCK
    alone (GFP_NOWAIT) reduces nothing.
    """
    wmin = mark
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            wmin -= wmin // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                wmin -= wmin // 4
        if alloc_flags & ALLOC_OOM:
            wmin -= wmin // 2
    return wmin


@rule("ALLOC-POL-014", "The watermark test",
      "mm/page_alloc.c:__zone_watermark_ok @ v6.18")
def zone_watermark_ok(w: Work, order: int, mark: int, alloc_flags: int, free_pages: int) -> bool:
    """
    A zone passes for ``order`` at ``mark`` when ``free - unusable_free`` exceeds the
    reserve-adjusted mark plus ``lowmem_reserve`` (the difference may go negative and then
    fails), and, for order > 0, some free area of order >= ``order`` has a non-empty list of
    a pcp type, of CMA (with ALLOC_CMA) or of HIGHATOMIC (with ALLOC_HIGHATOMIC or ALLOC_OOM).
    """
    free_pages -= zone_watermark_unusable_free(order, alloc_flags, w.nr_free_highatomic,
                                               w.nr_free_cma_pages)
    wmin = reserve_adjusted_min(mark, alloc_flags)
    if free_pages <= wmin + w.config.lowmem_reserve:
        return False
    if order == 0:
        return True
    for o in range(order, w.config.nr_page_orders):
        area = w.free_area[o]
        if not w.nr_free[o]:
            continue
        if any(area[mt] for mt in range(MIGRATE_PCPTYPES)):
            return True
        if alloc_flags & ALLOC_CMA and area[MIGRATE_CMA]:
            return True
        if alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM) and area[MIGRATE_HIGHATOMIC]:
            return True
    return False


@rule("ALLOC-POL-015", "The fast watermark test",
      "mm/page_alloc.c:zone_watermark_fast @ v6.18")
def zone_watermark_fast(w: Work, order: int, mark: int, alloc_flags: int) -> bool:
    """
    Order 0 first tries ``free - min(free, unusable) > mark + lowmem_reserve`` (the 2022 fix
    against a negative difference); then the full test. A failing order-0 ALLOC_MIN_RESERVE
    request at WMARK_MIN retries against the unboosted min mark.
    """
    free_pages = w.nr_free_pages
    if order == 0:
        reserved = zone_watermark_unusable_free(0, alloc_flags, w.nr_free_highatomic,
                                                w.nr_free_cma_pages)
        usable_free = free_pages - min(free_pages, reserved)
        if usable_free > mark + w.config.lowmem_reserve:
            return True
    if zone_watermark_ok(w, order, mark, alloc_flags, free_pages):
        return True
    if (order == 0 and alloc_flags & ALLOC_MIN_RESERVE and w.watermark_boost
            and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN):
        return zone_watermark_ok(w, order, w.watermark[WMARK_MIN], alloc_flags, free_pages)
    return False


@rule("ALLOC-POL-016", "Watermark boost on a fragmenting fallback",
      "mm/page_alloc.c:boost_watermark @ v6.18")
def boost_watermark(w: Work) -> bool:
    """
    When a fallback looks at a block smaller than a pageblock, the watermarks are boosted:
    no-op if ``watermark_boost_factor`` is 0 or the zone is smaller than four pageblocks;
    ``max_boost = high * factor / 10000`` (no-op if 0), at least one pageblock; the boost grows
    by one pageblock up to ``max_boost``. Returns whether it boosted.
    """
    cfg = w.config
    if not cfg.watermark_boost_factor:
        return False
    if cfg.pageblock_nr_pages * 4 > w.zone_managed_pages():
        return False
    high = w.watermark[WMARK_HIGH]
    max_boost = high * cfg.watermark_boost_factor // 10000
    if not max_boost:
        return False
    max_boost = max(cfg.pageblock_nr_pages, max_boost)
    w.watermark_boost = min(w.watermark_boost + cfg.pageblock_nr_pages, max_boost)
    return True


def highatomic_max(managed: int, pageblock_nr_pages: int) -> int:
    """``ALIGN(managed / 100, pageblock_nr_pages)``: the highatomic reserve's bound."""
    share = managed // 100
    return (share + pageblock_nr_pages - 1) // pageblock_nr_pages * pageblock_nr_pages


__all__ = ["setup_per_zone_wmarks", "pcp_batch_high", "zone_watermark_ok",
           "zone_watermark_fast", "boost_watermark", "zone_wmarks", "highatomic_max",
           "WMARK_LOW", "WMARK_HIGH"]
