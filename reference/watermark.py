"""Zone sizing arithmetic: watermarks, per-CPU batch and high bounds, the highatomic bound.

Restated from the kernel (mm/page_alloc.c) for the reference implementation, which may take
vocabulary from :mod:`spec` but never behaviour; the lockstep tests hold it to ALLOC-POL-010,
ALLOC-POL-011 and the spec's ``highatomic_max``.
"""

from __future__ import annotations

import math

from spec.constants import PAGE_SHIFT
from spec.zone import ZoneConfig

MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8


def min_free_kbytes(cfg: ZoneConfig) -> int:
    """The configured value, else ``calculate_min_free_kbytes``.

    That is ``clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)``.
    """
    if cfg.min_free_kbytes is not None:
        return cfg.min_free_kbytes
    lowmem_kbytes = cfg.managed_pages * ((1 << PAGE_SHIFT) >> 10)
    return max(128, min(262144, math.isqrt(lowmem_kbytes * 16)))


def zone_wmarks(cfg: ZoneConfig) -> list[int]:
    """``__setup_per_zone_wmarks`` for the only (lowmem) zone: [min, low, high, promo]."""
    managed = cfg.managed_pages
    pages_min = min_free_kbytes(cfg) >> (PAGE_SHIFT - 10)
    wmin = pages_min * managed // managed
    delta = max(wmin >> 2, managed * cfg.watermark_scale_factor // 10000)
    return [wmin, wmin + delta, wmin + 2 * delta, wmin + 3 * delta]


def pcp_batch_high(cfg: ZoneConfig, low_wmark: int) -> tuple[int, int, int]:
    """``zone_batchsize`` and ``zone_highsize``: (batch, high_min, high_max)."""
    managed = cfg.managed_pages
    batch = max(1, min(managed >> 10, (1 << 20) >> PAGE_SHIFT) // 4)
    batch = max(1, (1 << ((batch + batch // 2).bit_length() - 1)) - 1)
    floor = batch << 2
    nr_cpus = cfg.nr_cpus
    fraction = cfg.percpu_pagelist_high_fraction
    if fraction:
        high = max(managed // fraction // nr_cpus, floor)
        return batch, high, high
    return (batch, max(low_wmark // nr_cpus, floor),
            max(managed // MIN_PERCPU_PAGELIST_HIGH_FRACTION // nr_cpus, floor))


def highatomic_max(cfg: ZoneConfig) -> int:
    """``ALIGN(managed / 100, pageblock_nr_pages)``."""
    pbnr = cfg.pageblock_nr_pages
    return (cfg.managed_pages // 100 + pbnr - 1) // pbnr * pbnr
