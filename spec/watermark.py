"""Watermarks, boost, reserves, and per-CPU list sizing.

The arithmetic is written so that the same functions run on Python ints and on Z3
bit-vectors: they use ``+ - * & | << >>`` and comparisons directly, and take the few
operations Python spells differently for the two (``//``, ``max``, ``min``, a conditional
expression, ``or``, ``rounddown_pow_of_two``) from an ``ops`` backend, :data:`INT` by default.
``proofs.runner.Z3`` is the bit-vector backend; the proofs call these very functions.
"""

from __future__ import annotations

from typing import Any

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


class IntOps:
    """The Python-int backend of the spec's arithmetic (what the kernel's C means on ints)."""

    @staticmethod
    def div(a: Any, b: Any) -> Any:
        """Unsigned division, ``a / b`` in C for non-negative operands."""
        return a // b

    @staticmethod
    def ite(cond: Any, then: Any, other: Any) -> Any:
        """``cond ? then : other`` (both arms are evaluated: keep them side-effect free)."""
        return then if cond else other

    @staticmethod
    def max(a: Any, b: Any) -> Any:
        return a if a >= b else b

    @staticmethod
    def min(a: Any, b: Any) -> Any:
        return a if a <= b else b

    @staticmethod
    def or_(*conds: Any) -> Any:
        return any(conds)

    @staticmethod
    def rounddown_pow_of_two(x: Any) -> Any:
        """The largest power of two not above ``x`` (``x >= 1``)."""
        return 1 << (x.bit_length() - 1)


#: The default backend: plain Python ints.
INT = IntOps()


@rule("ALLOC-POL-010", "Watermarks from min_free_kbytes and watermark_scale_factor",
      "mm/page_alloc.c:__setup_per_zone_wmarks @ v6.18")
def setup_per_zone_wmarks(min_free_kbytes: Any, managed: Any, lowmem_pages: Any,
                          watermark_scale_factor: Any,
                          ops: Any = INT) -> tuple[Any, Any, Any, Any]:
    """
    ``pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)``; a zone's share is
    ``tmp = pages_min * managed / lowmem_pages`` and WMARK_MIN = tmp (lowmem zones);
    ``delta = max(tmp >> 2, managed * watermark_scale_factor / 10000)``;
    LOW = MIN + delta, HIGH = LOW + delta, PROMO = HIGH + delta. The boost is reset to 0.
    """
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    tmp = ops.div(pages_min * managed, lowmem_pages)
    wmin = tmp
    # mult_frac(managed, watermark_scale_factor, 10000) in the kernel: the same quotient.
    delta = ops.max(tmp >> 2, ops.div(managed * watermark_scale_factor, 10000))
    low = wmin + delta
    high = low + delta
    return (wmin, low, high, high + delta)


def highmem_min_pages(managed: int) -> int:
    """WMARK_MIN of a HIGHMEM/MOVABLE zone: clamp(managed/1024, SWAP_CLUSTER_MAX, 128)."""
    return max(SWAP_CLUSTER_MAX, min(128, managed // 1024))


@rule("ALLOC-POL-011", "Per-CPU batch and high bounds",
      "mm/page_alloc.c:zone_batchsize,zone_highsize @ v6.12.117 (unchanged through 6.18)")
def pcp_batch_high(managed: Any, low_wmark: Any, nr_cpus: Any,
                   percpu_pagelist_high_fraction: Any, ops: Any = INT) -> tuple[Any, Any, Any]:
    """
    ``batch = min(managed >> 10, 256) / 4`` (at least 1), then
    ``rounddown_pow_of_two(batch + batch/2) - 1``, at least 1. ``high_min`` is the low
    watermark split over the node's CPUs, ``high_max`` is managed/8 split likewise, each at
    least ``batch * 4``; with ``percpu_pagelist_high_fraction`` both are managed/fraction.
    Returns (batch, high_min, high_max).
    """
    batch = ops.div(ops.min(managed >> 10, (1 << 20) >> PAGE_SHIFT), 4)
    batch = ops.max(batch, 1)
    batch = ops.rounddown_pow_of_two(batch + ops.div(batch, 2)) - 1
    batch = ops.max(1, batch)

    def highsize(total_pages: Any) -> Any:
        return ops.max(ops.div(total_pages, nr_cpus), batch << 2)

    fraction_set = percpu_pagelist_high_fraction != 0
    # The divisor only matters when the fraction is set; max() keeps the other arm defined.
    by_fraction = highsize(ops.div(managed, ops.max(percpu_pagelist_high_fraction, 1)))
    high_min = ops.ite(fraction_set, by_fraction, highsize(low_wmark))
    high_max = ops.ite(fraction_set, by_fraction,
                       highsize(ops.div(managed, MIN_PERCPU_PAGELIST_HIGH_FRACTION)))
    return batch, high_min, high_max


def zone_wmarks(cfg: ZoneConfig) -> tuple[int, int, int, int]:
    return setup_per_zone_wmarks(cfg.effective_min_free_kbytes(), cfg.managed_pages,
                                 cfg.managed_pages, cfg.watermark_scale_factor)


@rule("ALLOC-POL-012", "Pages a request may not count as free",
      "mm/page_alloc.c:__zone_watermark_unusable_free @ v6.18")
def zone_watermark_unusable_free(order: Any, alloc_flags: Any, nr_free_highatomic: Any,
                                 nr_free_cma_pages: Any, ops: Any = INT) -> Any:
    """
    ``(1 << order) - 1`` pages are never usable for an order-``order`` request; a request
    without any ALLOC_RESERVES flag cannot use the free highatomic pages
    (``nr_free_highatomic``, the 6.12 fix that replaced the reserved count); one without
    ALLOC_CMA cannot use free CMA pages.
    """
    unusable = (1 << order) - 1
    unusable += ops.ite((alloc_flags & ALLOC_RESERVES) == 0, nr_free_highatomic, 0)
    unusable += ops.ite((alloc_flags & ALLOC_CMA) == 0, nr_free_cma_pages, 0)
    return unusable


@rule("ALLOC-POL-013", "Reserve reductions of the watermark",
      "mm/page_alloc.c:__zone_watermark_ok @ v6.18")
def reserve_adjusted_min(mark: Any, alloc_flags: Any, ops: Any = INT) -> Any:
    """
    With ALLOC_MIN_RESERVE (__GFP_HIGH) a request may go half way below the mark
    (``min -= min/2``), and a non-blocking one (ALLOC_NON_BLOCK with it, i.e. GFP_ATOMIC) a
    further quarter of what is left (``min -= min/4``); ALLOC_OOM halves again. ALLOC_NON_BLOCK
    alone (GFP_NOWAIT) reduces nothing.
    """
    # The kernel nests all three under ``if (alloc_flags & ALLOC_RESERVES)``, which holds
    # whenever any of them does.
    wmin = mark
    min_reserve = (alloc_flags & ALLOC_MIN_RESERVE) != 0
    wmin = ops.ite(min_reserve, wmin - ops.div(wmin, 2), wmin)
    wmin = ops.ite(min_reserve & ((alloc_flags & ALLOC_NON_BLOCK) != 0),
                   wmin - ops.div(wmin, 4), wmin)
    wmin = ops.ite((alloc_flags & ALLOC_OOM) != 0, wmin - ops.div(wmin, 2), wmin)
    return wmin


def watermark_free_ok(free_pages: Any, unusable_free: Any, wmin: Any, lowmem_reserve: Any) -> Any:
    """``__zone_watermark_ok``'s count test on signed longs: ``free - unusable > min + reserve``.

    The difference may be negative; then the test fails, as it must.
    """
    return free_pages - unusable_free > wmin + lowmem_reserve


def watermark_fast_order0_ok(free_pages: Any, reserved: Any, mark: Any, lowmem_reserve: Any,
                             ops: Any = INT) -> Any:
    """``zone_watermark_fast``'s order-0 shortcut, after the 2022 fix: the usable count is
    ``free - min(free, reserved)``, never negative, before it meets the unsigned mark."""
    usable_free = free_pages - ops.min(free_pages, reserved)
    return usable_free > mark + lowmem_reserve


@rule("ALLOC-POL-014", "The watermark test",
      "mm/page_alloc.c:__zone_watermark_ok @ v6.18")
def zone_watermark_ok(w: Work, order: int, mark: int, alloc_flags: int, free_pages: int) -> bool:
    """
    A zone passes for ``order`` at ``mark`` when ``free - unusable_free`` exceeds the
    reserve-adjusted mark plus ``lowmem_reserve`` (the difference may go negative and then
    fails), and, for order > 0, some free area of order >= ``order`` has a non-empty list of
    a pcp type, of CMA (with ALLOC_CMA) or of HIGHATOMIC (with ALLOC_HIGHATOMIC or ALLOC_OOM).
    """
    unusable_free = zone_watermark_unusable_free(order, alloc_flags, w.nr_free_highatomic,
                                                 w.nr_free_cma_pages)
    wmin = reserve_adjusted_min(mark, alloc_flags)
    if not watermark_free_ok(free_pages, unusable_free, wmin, w.config.lowmem_reserve):
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
        if watermark_fast_order0_ok(free_pages, reserved, mark, w.config.lowmem_reserve):
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
    max_boost = watermark_max_boost(w.watermark[WMARK_HIGH], cfg.watermark_boost_factor,
                                    cfg.pageblock_nr_pages)
    if not max_boost:
        return False
    w.watermark_boost = boosted_watermark(w.watermark_boost, max_boost, cfg.pageblock_nr_pages)
    return True


def watermark_max_boost(high: Any, watermark_boost_factor: Any, pageblock_nr_pages: Any,
                        ops: Any = INT) -> Any:
    """``mult_frac(high, factor, 10000)``, raised to a pageblock; 0 (no boosting) if that is 0."""
    max_boost = ops.div(high * watermark_boost_factor, 10000)
    return ops.ite(max_boost == 0, 0, ops.max(pageblock_nr_pages, max_boost))


def boosted_watermark(boost: Any, max_boost: Any, pageblock_nr_pages: Any,
                      ops: Any = INT) -> Any:
    """One boost step: ``min(boost + pageblock_nr_pages, max_boost)``."""
    return ops.min(boost + pageblock_nr_pages, max_boost)


def highatomic_max(managed: Any, pageblock_nr_pages: Any, ops: Any = INT) -> Any:
    """``ALIGN(managed / 100, pageblock_nr_pages)``: the highatomic reserve's bound."""
    share = ops.div(managed, 100)
    return ops.div(share + pageblock_nr_pages - 1, pageblock_nr_pages) * pageblock_nr_pages


__all__ = ["INT", "IntOps", "setup_per_zone_wmarks", "pcp_batch_high", "zone_watermark_ok",
           "zone_watermark_fast", "boost_watermark", "zone_wmarks", "highatomic_max",
           "WMARK_LOW", "WMARK_HIGH"]
