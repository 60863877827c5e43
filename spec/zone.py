"""The zone: configuration, immutable state, and the working copy operations mutate.

A :class:`Zone` is an immutable value (attrs frozen, tuples, frozensets): it hashes, compares
and can be explored. Operations are ``op(zone, args) -> (zone', result)``; inside one
operation the kernel-named functions work on a :class:`Work` copy, which reads like the C
it models, and the operation returns ``work.freeze()``.

Sizes are configurable so that tiny zones (``max_page_order=3``, ``pageblock_order=2``, four
pageblocks, two CPUs) can be explored; the defaults are the kernel's (10 and 9).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from spec.constants import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_WMARK,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGE_SHIFT,
)
from spec.rules import DEFAULT_VARIANT, VARIANTS, alloc_base_variant, alloc_has


class SpecError(Exception):
    """An operation was called outside its precondition (e.g. freeing a page not allocated)."""


#: Knobs a user can change at run time, by their /proc/sys/vm names.
KNOBS = ("min_free_kbytes", "watermark_scale_factor", "watermark_boost_factor", "defrag_mode",
         "percpu_pagelist_high_fraction")
INT_MAX = (1 << 31) - 1
#: What the sysctls accept (kernel/sysctl.c, mm/page_alloc.c: proc_dointvec_minmax with these
#: bounds; a bound the table leaves open is INT_MAX).
KNOB_RANGES = {
    "min_free_kbytes": (0, INT_MAX),
    "watermark_scale_factor": (1, 3000),
    "watermark_boost_factor": (0, INT_MAX),
    "defrag_mode": (0, 1),
    "percpu_pagelist_high_fraction": (0, INT_MAX),
}


def _pos(_: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise SpecError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class ZoneConfig:
    """A zone's shape and its knobs. ``min_free_kbytes=None`` computes the kernel default."""

    nr_pageblocks: int = attrs.field(default=8, validator=_pos)
    max_page_order: int = attrs.field(default=10, validator=_pos)
    pageblock_order: int = attrs.field(default=9, validator=_pos)
    nr_cpus: int = attrs.field(default=2, validator=_pos)
    zone_start_pfn: int = attrs.field(default=0, validator=_pos)
    #: Pageblock types at boot; ``None`` means every block MOVABLE, as memmap_init leaves them.
    pageblock_types: tuple[int, ...] | None = None
    #: Whether the pcp keeps THP-order lists (CONFIG_TRANSPARENT_HUGEPAGE) and at which order.
    thp: bool = True
    hpage_pmd_order: int | None = None
    #: The model's zone plays the part of ZONE_NORMAL with a populated DMA32 below it.
    zone_is_normal_with_dma32: bool = True
    lowmem_reserve: int = 0
    min_free_kbytes: int | None = None
    watermark_scale_factor: int = 10
    watermark_boost_factor: int = 15000
    defrag_mode: int = 0
    percpu_pagelist_high_fraction: int = 0
    #: ``per_cpu_data_slice_size >> PAGE_SHIFT > 3 * batch`` decides PCPF_FREE_HIGH_BATCH.
    pcp_free_high_batch: bool = False
    variant: str = DEFAULT_VARIANT

    def __attrs_post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise SpecError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.defrag_mode and not alloc_has(self.variant, "defrag_mode"):
            raise SpecError(f"variant {self.variant} has no vm.defrag_mode knob")
        if self.nr_pageblocks < 1 or self.nr_cpus < 1:
            raise SpecError("a zone needs at least one pageblock and one CPU")
        if not 0 <= self.pageblock_order <= self.max_page_order:
            raise SpecError("pageblock_order must lie in 0..max_page_order")
        if self.zone_start_pfn % (1 << self.max_page_order):
            raise SpecError("zone_start_pfn must be aligned to MAX_ORDER_NR_PAGES")
        if self.pageblock_types is not None:
            if len(self.pageblock_types) != self.nr_pageblocks:
                raise SpecError("pageblock_types needs one type per pageblock")
            for mt in self.pageblock_types:
                if mt not in (0, 1, 2, MIGRATE_HIGHATOMIC, MIGRATE_CMA):
                    raise SpecError(f"pageblock type {mt} cannot be set at boot")
        for knob in KNOBS:
            value = getattr(self, knob)
            lo, hi = KNOB_RANGES[knob]
            if value is not None and not lo <= value <= hi:
                raise SpecError(f"{knob}={value} outside the sysctl range {lo}..{hi}")
        if 0 < self.percpu_pagelist_high_fraction < 8:
            raise SpecError("percpu_pagelist_high_fraction must be 0 or at least 8 "
                            "(MIN_PERCPU_PAGELIST_HIGH_FRACTION; the sysctl answers EINVAL)")
        if self.thp and self.pmd_order > self.pageblock_order:
            raise SpecError("hpage_pmd_order exceeds pageblock_order (the kernel's "
                            "pageblock_order is min(HPAGE_PMD_ORDER, ...))")

    # --- derived sizes -----------------------------------------------------------------

    @property
    def pageblock_nr_pages(self) -> int:
        return 1 << self.pageblock_order

    @property
    def spanned_pages(self) -> int:
        return self.nr_pageblocks << self.pageblock_order

    @property
    def managed_pages(self) -> int:
        return self.spanned_pages

    @property
    def end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    @property
    def nr_page_orders(self) -> int:
        return self.max_page_order + 1

    @property
    def pmd_order(self) -> int:
        return self.pageblock_order if self.hpage_pmd_order is None else self.hpage_pmd_order

    @property
    def nr_lowoder_pcp_lists(self) -> int:
        return MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)

    @property
    def nr_pcp_lists(self) -> int:
        return self.nr_lowoder_pcp_lists + (2 if self.thp else 0)

    @property
    def page_group_by_mobility_disabled(self) -> bool:
        """``build_all_zonelists``: grouping is off below pageblock_nr_pages * MIGRATE_TYPES."""
        return self.managed_pages < self.pageblock_nr_pages * MIGRATE_TYPES

    def effective_min_free_kbytes(self) -> int:
        """``calculate_min_free_kbytes``: clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)."""
        if self.min_free_kbytes is not None:
            return self.min_free_kbytes
        lowmem_kbytes = self.managed_pages * ((1 << PAGE_SHIFT) >> 10)
        return max(128, min(262144, math.isqrt(lowmem_kbytes * 16)))

    @property
    def free_high_min(self) -> bool:
        """The 6.16+ pcp free_high threshold ``batch + high_min/2`` (else ``batch``)."""
        return alloc_has(self.variant, "free_high_min")

    def pcp_allowed_order(self, order: int) -> bool:
        """Orders up to PAGE_ALLOC_COSTLY_ORDER, and the THP order, use the per-CPU lists.

        In every kernel configuration these orders are at most pageblock_order, so a per-CPU
        block never spans pageblocks; tiny model configurations (pageblock_order < 3) cap the
        per-CPU orders at pageblock_order to keep that property.
        """
        if order <= min(PAGE_ALLOC_COSTLY_ORDER, self.pageblock_order):
            return True
        return self.thp and order == self.pmd_order

    def order_to_pindex(self, migratetype: int, order: int) -> int:
        if self.thp and order > PAGE_ALLOC_COSTLY_ORDER:
            return self.nr_lowoder_pcp_lists + (1 if migratetype == MIGRATE_MOVABLE else 0)
        return MIGRATE_PCPTYPES * order + migratetype

    def pindex_to_order(self, pindex: int) -> int:
        if self.thp and pindex >= self.nr_lowoder_pcp_lists:
            return self.pmd_order
        return pindex // MIGRATE_PCPTYPES

    def pageblock_of(self, pfn: int) -> int:
        return (pfn - self.zone_start_pfn) >> self.pageblock_order

    def zone_spans_pfn(self, pfn: int) -> bool:
        return self.zone_start_pfn <= pfn < self.end_pfn

    def with_knob(self, name: str, value: int) -> ZoneConfig:
        if name not in KNOBS:
            raise SpecError(f"unknown knob {name!r}; known: {', '.join(KNOBS)}")
        return attrs.evolve(self, **{name: value})  # type: ignore[arg-type]


@attrs.frozen
class PerCpuPages:
    """``struct per_cpu_pages`` of one CPU for the zone. Lists hold pfns, head first."""

    lists: tuple[tuple[int, ...], ...]
    count: int
    high: int
    high_min: int
    high_max: int
    batch: int
    alloc_factor: int = 0
    free_count: int = 0
    flags: int = 0


PCPF_PREV_FREE_HIGH_ORDER = 1
PCPF_FREE_HIGH_BATCH = 2

ZONE_BOOSTED_WATERMARK = "ZONE_BOOSTED_WATERMARK"
ZONE_BELOW_HIGH = "ZONE_BELOW_HIGH"
ZONE_RECLAIM_ACTIVE = "ZONE_RECLAIM_ACTIVE"


@attrs.frozen
class Allocation:
    """A block handed out by the allocator: first pfn, order, and the request's migratetype."""

    pfn: int
    order: int
    migratetype: int


@attrs.frozen
class Zone:
    """The allocator's state for one zone.

    ``free_area[order][mt]`` lists the first pfn of each free buddy, head first.
    ``pageblock_migratetype`` holds each block's 3-bit type; ``pageblock_isolate`` its
    standalone isolate bit (6.17+). Counters are kept as the kernel keeps them, incrementally;
    invariants compare them with their definitions.
    """

    config: ZoneConfig
    pageblock_migratetype: tuple[int, ...]
    pageblock_isolate: tuple[bool, ...]
    free_area: tuple[tuple[tuple[int, ...], ...], ...]
    nr_free: tuple[int, ...]
    nr_free_pages: int
    nr_free_pages_blocks: int
    nr_free_cma_pages: int
    nr_free_highatomic: int
    nr_reserved_highatomic: int
    watermark: tuple[int, ...]
    watermark_boost: int
    flags: frozenset[str]
    pcp: tuple[PerCpuPages, ...]
    allocated: frozenset[Allocation]

    def wmark_pages(self, which: int) -> int:
        """``min/low/high_wmark_pages(z)``: the mark plus the current boost."""
        return self.watermark[which] + self.watermark_boost

    def get_pfnblock_migratetype(self, pfn: int) -> int:
        pb = self.config.pageblock_of(pfn)
        return MIGRATE_ISOLATE if self.pageblock_isolate[pb] else self.pageblock_migratetype[pb]

    def free_blocks(self) -> list[tuple[int, int, int]]:
        """Every free buddy as (pfn, order, list migratetype)."""
        return [(pfn, order, mt)
                for order, lists in enumerate(self.free_area)
                for mt, lst in enumerate(lists) for pfn in lst]

    def pcp_blocks(self) -> list[tuple[int, int, int, int]]:
        """Every block on a per-CPU list as (cpu, pindex, pfn, order)."""
        cfg = self.config
        return [(cpu, pindex, pfn, cfg.pindex_to_order(pindex))
                for cpu, pcp in enumerate(self.pcp)
                for pindex, lst in enumerate(pcp.lists) for pfn in lst]


class Work:
    """A mutable copy of a :class:`Zone` for the duration of one operation.

    Field names follow ``struct zone``; ``buddy`` maps the first pfn of each free buddy to
    (order, list migratetype), which is what ``PageBuddy`` and ``buddy_order()`` tell the
    kernel.
    """

    def __init__(self, z: Zone) -> None:
        self.config = z.config
        self.pageblock_migratetype = list(z.pageblock_migratetype)
        self.pageblock_isolate = list(z.pageblock_isolate)
        self.free_area = [[list(lst) for lst in lists] for lists in z.free_area]
        self.nr_free = list(z.nr_free)
        self.nr_free_pages = z.nr_free_pages
        self.nr_free_pages_blocks = z.nr_free_pages_blocks
        self.nr_free_cma_pages = z.nr_free_cma_pages
        self.nr_free_highatomic = z.nr_free_highatomic
        self.nr_reserved_highatomic = z.nr_reserved_highatomic
        self.watermark = list(z.watermark)
        self.watermark_boost = z.watermark_boost
        self.flags = set(z.flags)
        self.pcp = [_WorkPcp(p) for p in z.pcp]
        self.allocated = {a.pfn: a for a in z.allocated}
        self.buddy: dict[int, tuple[int, int]] = {
            pfn: (order, mt) for pfn, order, mt in z.free_blocks()}

    def freeze(self) -> Zone:
        return Zone(
            config=self.config,
            pageblock_migratetype=tuple(self.pageblock_migratetype),
            pageblock_isolate=tuple(self.pageblock_isolate),
            free_area=tuple(tuple(tuple(lst) for lst in lists) for lists in self.free_area),
            nr_free=tuple(self.nr_free),
            nr_free_pages=self.nr_free_pages,
            nr_free_pages_blocks=self.nr_free_pages_blocks,
            nr_free_cma_pages=self.nr_free_cma_pages,
            nr_free_highatomic=self.nr_free_highatomic,
            nr_reserved_highatomic=self.nr_reserved_highatomic,
            watermark=tuple(self.watermark),
            watermark_boost=self.watermark_boost,
            flags=frozenset(self.flags),
            pcp=tuple(p.freeze() for p in self.pcp),
            allocated=frozenset(self.allocated.values()),
        )

    # --- pageblock flags -------------------------------------------------------------------

    def get_pfnblock_migratetype(self, pfn: int) -> int:
        pb = self.config.pageblock_of(pfn)
        return MIGRATE_ISOLATE if self.pageblock_isolate[pb] else self.pageblock_migratetype[pb]

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        """Set the 3-bit type and clear the isolate bit (6.17+ semantics)."""
        if self.config.page_group_by_mobility_disabled and mt < MIGRATE_PCPTYPES:
            mt = 0
        pb = self.config.pageblock_of(pfn)
        self.pageblock_migratetype[pb] = mt
        self.pageblock_isolate[pb] = False

    def zone_managed_pages(self) -> int:
        return self.config.managed_pages

    def wmark_pages(self, which: int) -> int:
        return self.watermark[which] + self.watermark_boost


class _WorkPcp:
    def __init__(self, p: PerCpuPages) -> None:
        self.lists = [list(lst) for lst in p.lists]
        self.count = p.count
        self.high = p.high
        self.high_min = p.high_min
        self.high_max = p.high_max
        self.batch = p.batch
        self.alloc_factor = p.alloc_factor
        self.free_count = p.free_count
        self.flags = p.flags

    def freeze(self) -> PerCpuPages:
        return PerCpuPages(tuple(tuple(lst) for lst in self.lists), self.count, self.high,
                           self.high_min, self.high_max, self.batch, self.alloc_factor,
                           self.free_count, self.flags)


__all__ = ["ZoneConfig", "Zone", "Work", "PerCpuPages", "Allocation", "SpecError", "KNOBS",
           "NR_WMARK", "MIGRATE_TYPES", "alloc_has", "alloc_base_variant"]
