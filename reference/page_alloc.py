"""The reference implementation of the ALLOC core: one zone in flat arrays.

Same operations and the same observable behaviour as :mod:`spec.page_alloc`, built for speed
and scale. Every page ``i`` (offset from ``zone_start_pfn``) has a state byte holding its state
(not a block head, free buddy, on a per-CPU list, allocated) in the low two bits and its order
above them (``state | order << 2``: the free path's test of a page, and the merge's test of a
buddy, read one byte, one cache line), and a migratetype byte (the free list's type for a
buddy, the request's type for an allocation). The buddy free lists are
intrusive circular doubly-linked lists in two int32 arrays, ``next`` and ``prev``, whose heads
are sentinel nodes numbered after the last page, as ``struct list_head`` in the kernel: add
(head or tail) and delete are O(1) and need no emptiness test. The per-CPU lists are only
ever used at their two ends (free to the head, allocate from the head, refill at the tail,
drain from the tail), so they are Python lists stored tail first: the head end, used
once per operation, is the list's end (``append`` and ``pop``, native in compiled code), and
the tail end is refilled and drained a batch at a time. Pageblock types and isolate
bits are byte arrays; counters are kept incrementally. :meth:`Zone.abstract` rebuilds the
spec's immutable value.

The hot paths (order-0 allocation and free through the per-CPU lists, ``rmqueue_bulk``,
``free_pcppages_bulk`` and the merging of ``__free_one_page`` below pageblock order) bind
arrays to locals and inline the list operations; the rare paths (claiming, isolation, the
highatomic reserve) are written as the spec is, function for function. The spec's
consistency checks (a free block goes on its pageblock's list) are kept wherever they can
fail; where the hot paths leave one out, a comment says why it cannot.

The module is plain typed Python written so that mypyc can compile it (``pip install``
does when it can; see setup.py and ``reference.COMPILED``): the per-page arrays are
``librt.vecs`` vectors (``vec[i32]`` links, ``vec[u8]`` bytes; :mod:`reference._arrays`), which
compiled code reads and writes natively; the spec's constants are ``Final`` names; every
value read from a vector is taken as ``int`` before any arithmetic. ``Zone`` stays open to
subclasses in plain Python (the checker's mutants), whose overrides compiled code calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

import spec.constants as _c
import spec.zone as _z
from reference._arrays import i32_array, u8_array
from reference.watermark import highatomic_max, pcp_batch_high, zone_wmarks
from spec.constants import FALLBACKS, alloc_flags_nofragment, gfp_migratetype, gfp_to_alloc_flags
from spec.zone import Allocation, PerCpuPages, SpecError, ZoneConfig, alloc_base_variant
from spec.zone import Zone as SpecZone

if TYPE_CHECKING:
    from librt.vecs import vec
    from mypy_extensions import i32, u8

# The spec's vocabulary as Final names: compiled, they are native constants, not a module
# dictionary look-up at every use.
ALLOC_CMA: Final[int] = _c.ALLOC_CMA
ALLOC_HIGHATOMIC: Final[int] = _c.ALLOC_HIGHATOMIC
ALLOC_KSWAPD: Final[int] = _c.ALLOC_KSWAPD
ALLOC_MIN_RESERVE: Final[int] = _c.ALLOC_MIN_RESERVE
ALLOC_NO_WATERMARKS: Final[int] = _c.ALLOC_NO_WATERMARKS
ALLOC_NOFRAGMENT: Final[int] = _c.ALLOC_NOFRAGMENT
ALLOC_NON_BLOCK: Final[int] = _c.ALLOC_NON_BLOCK
ALLOC_OOM: Final[int] = _c.ALLOC_OOM
ALLOC_RESERVES: Final[int] = _c.ALLOC_RESERVES
ALLOC_WMARK_LOW: Final[int] = _c.ALLOC_WMARK_LOW
ALLOC_WMARK_MASK: Final[int] = _c.ALLOC_WMARK_MASK
MIGRATE_CMA: Final[int] = _c.MIGRATE_CMA
MIGRATE_HIGHATOMIC: Final[int] = _c.MIGRATE_HIGHATOMIC
MIGRATE_ISOLATE: Final[int] = _c.MIGRATE_ISOLATE
MIGRATE_MOVABLE: Final[int] = _c.MIGRATE_MOVABLE
MIGRATE_PCPTYPES: Final[int] = _c.MIGRATE_PCPTYPES
MIGRATE_RECLAIMABLE: Final[int] = _c.MIGRATE_RECLAIMABLE
MIGRATE_TYPES: Final[int] = _c.MIGRATE_TYPES
MIGRATE_UNMOVABLE: Final[int] = _c.MIGRATE_UNMOVABLE
PAGE_ALLOC_COSTLY_ORDER: Final[int] = _c.PAGE_ALLOC_COSTLY_ORDER
PCP_BATCH_SCALE_MAX: Final[int] = _c.PCP_BATCH_SCALE_MAX
WMARK_HIGH: Final[int] = _c.WMARK_HIGH
WMARK_LOW: Final[int] = _c.WMARK_LOW
WMARK_MIN: Final[int] = _c.WMARK_MIN
PCPF_FREE_HIGH_BATCH: Final[int] = _z.PCPF_FREE_HIGH_BATCH
PCPF_PREV_FREE_HIGH_ORDER: Final[int] = _z.PCPF_PREV_FREE_HIGH_ORDER
ZONE_BELOW_HIGH: Final = _z.ZONE_BELOW_HIGH
ZONE_BOOSTED_WATERMARK: Final = _z.ZONE_BOOSTED_WATERMARK
ZONE_RECLAIM_ACTIVE: Final = _z.ZONE_RECLAIM_ACTIVE

#: Page states (the low two bits of a page's state byte; its order is above them).
NOT_HEAD: Final = 0
PAGE_BUDDY: Final = 1
PAGE_PCP: Final = 2
PAGE_ALLOCATED: Final = 3

FPI_NONE: Final = 0
FPI_SKIP_REPORT_NOTIFY: Final = 1 << 0
FPI_TO_TAIL: Final = 1 << 1

RMQUEUE_NORMAL: Final = 0
RMQUEUE_CMA: Final = 1
RMQUEUE_CLAIM: Final = 2
RMQUEUE_STEAL: Final = 3

_ISO: Final[int] = MIGRATE_ISOLATE
_HA: Final[int] = MIGRATE_HIGHATOMIC
_NR_MT: Final[int] = MIGRATE_TYPES
_SCALE: Final[int] = PCP_BATCH_SCALE_MAX
#: bytes.translate table: 1 for a state byte of PAGE_ALLOCATED (any order), else 0.
_ALLOCATED_TABLE: Final = bytes([1 if v & 3 == PAGE_ALLOCATED else 0 for v in range(256)])
_SIZING_KNOBS: Final = ("min_free_kbytes", "watermark_scale_factor",
                        "percpu_pagelist_high_fraction")


class _Pcp:
    """``struct per_cpu_pages``; its lists hold page offsets tail first (head at the end)."""

    __slots__ = ("alloc_factor", "batch", "count", "flags", "free_count", "high", "high_max",
                 "high_min", "lists")

    alloc_factor: int
    batch: int
    count: int
    flags: int
    free_count: int
    high: int
    high_max: int
    high_min: int
    lists: list[list[int]]

    def __init__(self, nr_lists: int, high_min: int, high_max: int, batch: int,
                 flags: int) -> None:
        self.lists = [[] for _ in range(nr_lists)]
        self.count = 0
        self.high = 0
        self.high_min = high_min
        self.high_max = high_max
        self.batch = batch
        self.alloc_factor = 0
        self.free_count = 0
        self.flags = flags


@mypyc_attr(allow_interpreted_subclasses=True)
class Zone:
    """A mutable zone with the spec's operations as methods; ``abstract()`` gives its value.

    Compiled with mypyc (when installed so), the class stays open to subclasses written in
    plain Python, whose overrides the compiled code calls.
    """

    # Per-page arrays (see reference._arrays): links, then state | order << 2 and migratetype
    # bytes.
    _next: vec[i32]
    _prev: vec[i32]
    _state: vec[u8]
    _mt: vec[u8]
    # Per-pageblock: the type, the isolate bit, and get_pfnblock_migratetype (ISOLATE when
    # the bit is set, else the type).
    _pb_mt: vec[u8]
    _pb_iso: vec[u8]
    _pb_eff: vec[u8]
    _nr_free: list[int]
    _pcp: list[_Pcp]
    _pcp_allowed: list[bool]
    _pindex: list[int]
    _pindex_order: list[int]
    _wmark: list[int]
    _fast_flags: dict[int, tuple[int, int, bool, bool]]
    _slow_flags: dict[tuple[int, int], int]
    _cfg: ZoneConfig
    _base: int
    _n: int
    _pbo: int
    _pbnr: int
    _maxo: int
    _norders: int
    _nr_pageblocks: int
    _nr_cpus: int
    _npcp: int
    _managed: int
    _lowmem_reserve: int
    _mobility_disabled: bool
    _v615: bool
    _highatomic_max: int
    _defrag_mode: int
    _boost_factor: int
    _memo_gfp: int
    _memo_mt: int
    _memo_flags: int
    _memo_highatomic_unusable: bool
    _memo_cma_unusable: bool
    _boost: int
    _high_mark: int
    _below_high: bool
    _boosted: bool
    _reclaim_active: bool
    nr_free_pages: int
    nr_free_pages_blocks: int
    nr_free_cma_pages: int
    nr_free_highatomic: int
    nr_reserved_highatomic: int

    def __init__(self, config: ZoneConfig) -> None:
        cfg = config
        self._cfg = cfg
        n: int = cfg.spanned_pages
        self._base = cfg.zone_start_pfn
        self._n = n
        self._pbo = cfg.pageblock_order
        self._pbnr = cfg.pageblock_nr_pages
        self._maxo = cfg.max_page_order
        self._norders = cfg.nr_page_orders
        self._nr_pageblocks = cfg.nr_pageblocks
        self._nr_cpus = cfg.nr_cpus
        self._npcp = cfg.nr_pcp_lists
        self._managed = cfg.managed_pages
        self._lowmem_reserve = cfg.lowmem_reserve
        self._mobility_disabled = bool(cfg.page_group_by_mobility_disabled)
        self._v615 = not cfg.free_high_min
        self._highatomic_max = highatomic_max(cfg)
        self._pcp_allowed = [bool(cfg.pcp_allowed_order(o)) for o in range(self._norders)]
        #: order_to_pindex(mt, order) at [order * 8 + mt] (gfp_migratetype is below 8).
        self._pindex = [cfg.order_to_pindex(mt, o) for o in range(self._norders)
                        for mt in range(8)]
        self._pindex_order = [cfg.pindex_to_order(i) for i in range(self._npcp)]
        self._apply_knobs(cfg)

        size = n + self._norders * _NR_MT
        self._next = i32_array(size)
        self._prev = i32_array(size)
        nxt, prv = self._next, self._prev
        for s in range(n, size):
            nxt[s] = s
            prv[s] = s
        self._state = u8_array(n)
        self._mt = u8_array(n)

        types: tuple[int, ...] = (cfg.pageblock_types
                                  or (MIGRATE_MOVABLE,) * cfg.nr_pageblocks)
        if self._mobility_disabled:
            types = tuple([0 if mt < MIGRATE_PCPTYPES else mt for mt in types])
        self._pb_mt = u8_array(types)
        self._pb_iso = u8_array(cfg.nr_pageblocks)
        self._pb_eff = u8_array(types)

        self._nr_free = [0] * self._norders
        self.nr_free_pages = 0
        self.nr_free_pages_blocks = 0
        self.nr_free_cma_pages = 0
        self.nr_free_highatomic = 0
        self.nr_reserved_highatomic = types.count(MIGRATE_HIGHATOMIC) * self._pbnr
        self._wmark = zone_wmarks(cfg)
        self._boost = 0
        self._update_high_mark()
        self._below_high = False
        self._boosted = False
        self._reclaim_active = False
        batch, high_min, high_max = pcp_batch_high(cfg, self._wmark[WMARK_LOW])
        flags = PCPF_FREE_HIGH_BATCH if cfg.pcp_free_high_batch else 0
        self._pcp = [_Pcp(self._npcp, high_min, high_max, batch, flags)
                     for _ in range(self._nr_cpus)]
        self._boot_free()

    def _apply_knobs(self, cfg: ZoneConfig) -> None:
        self._cfg = cfg
        self._defrag_mode = cfg.defrag_mode
        self._boost_factor = cfg.watermark_boost_factor
        #: gfp -> (migratetype, fast-path alloc_flags, whether free highatomic pages and
        #: free CMA pages are unusable to it); (gfp, order) -> slow-path alloc_flags.
        self._fast_flags = {}
        self._slow_flags = {}
        #: The last gfp of the order-0 fast path and its _fast_flags entry, unpacked.
        self._memo_gfp = -1
        self._memo_mt = 0
        self._memo_flags = 0
        self._memo_highatomic_unusable = False
        self._memo_cma_unusable = False

    def _memoize(self, gfp: int) -> bool:
        """Make ``gfp``'s _fast_flags entry the memo, if it has one."""
        cached = self._fast_flags.get(gfp)
        if cached is None:
            return False
        self._memo_gfp = gfp
        (self._memo_mt, self._memo_flags, self._memo_highatomic_unusable,
         self._memo_cma_unusable) = cached
        return True

    def _update_high_mark(self) -> None:
        """The order-0 fast test's bound: the boosted high watermark plus lowmem_reserve."""
        self._high_mark = self._wmark[WMARK_HIGH] + self._boost + self._lowmem_reserve

    def _boot_free(self) -> None:
        """``memblock_free_pages``: the largest aligned chunks, in pfn order, freed to the tail.

        A chunk whose pageblocks all have one type ends as one free block at the tail of that
        type's list, whatever the merging order, so only mixed chunks are freed piece by piece.
        """
        pbo, maxo, n = self._pbo, self._maxo, self._n
        eff = self._pb_eff
        off = 0
        while off < n:
            order = maxo
            while off & ((1 << order) - 1) or off + (1 << order) > n:
                order -= 1
            first = off >> pbo
            last = (off + (1 << order) - 1) >> pbo
            mt: int = eff[first]
            same = True
            for pb in range(first + 1, last + 1):
                if eff[pb] != mt:
                    same = False
                    break
            if same:
                self._account_freepages(1 << order, mt)
                self._add_to_free_list(off, order, mt, True)
            else:
                self._split_large_buddy(off, order, FPI_TO_TAIL)
            off += 1 << order

    # --- public operations ----------------------------------------------------------------

    def _check_cpu(self, cpu: int) -> None:
        if not 0 <= cpu < self._nr_cpus:
            raise SpecError(f"cpu {cpu} outside 0..{self._nr_cpus - 1}")

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None:
        """ALLOC-OP-033: the fast path, then the slow path's first attempt.

        The common case is inlined: an order-0 request that passes the high watermark's
        order-0 test, served from a non-empty per-CPU list.
        """
        if not 0 <= cpu < self._nr_cpus:
            raise SpecError(f"cpu {cpu} outside 0..{self._nr_cpus - 1}")
        if order == 0 and not self._below_high:
            if gfp == self._memo_gfp or self._memoize(gfp):
                mt = self._memo_mt
                alloc_flags = self._memo_flags
                free_pages = self.nr_free_pages
                reserved = 0
                if self._memo_highatomic_unusable:
                    reserved = self.nr_free_highatomic
                if self._memo_cma_unusable:
                    reserved += self.nr_free_cma_pages
                if reserved > free_pages:  # noqa: PLR1730 (min() is a call: hot path)
                    reserved = free_pages
                if free_pages - reserved > self._high_mark:
                    pcp = self._pcp[cpu]
                    lst = pcp.lists[mt]
                    if lst:
                        pcp.free_count >>= 1
                        off = lst.pop()
                        pcp.count -= 1
                        if alloc_flags & ALLOC_KSWAPD:
                            self._boosted = False
                        self._state[off] = PAGE_ALLOCATED  # | 0 << 2: order 0
                        self._mt[off] = mt
                        return off + self._base
        if not 0 <= order <= self._maxo:
            return None
        cached = self._fast_flags.get(gfp)
        if cached is None:
            cfg = self._cfg
            mt = gfp_migratetype(gfp, self._mobility_disabled)
            alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(
                gfp, cfg.defrag_mode, cfg.zone_is_normal_with_dma32)
            if mt == MIGRATE_MOVABLE:
                alloc_flags |= ALLOC_CMA
            cached = self._fast_flags[gfp] = (mt, alloc_flags,
                                              not alloc_flags & ALLOC_RESERVES,
                                              not alloc_flags & ALLOC_CMA)
        mt, alloc_flags = cached[0], cached[1]
        page = self._get_page_from_freelist(order, alloc_flags, cpu, mt)
        if page is None:
            slow = self._slow_flags.get((gfp, order))
            if slow is None:
                cfg = self._cfg
                slow = self._slow_flags[(gfp, order)] = gfp_to_alloc_flags(
                    gfp, order, cfg.defrag_mode, alloc_base_variant(cfg.variant))
            page = self._get_page_from_freelist(order, slow, cpu, mt)
        return page

    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int,
                               cpu: int = 0) -> int | None:
        """ALLOC-OP-032 with explicit ``alloc_flags``."""
        self._check_cpu(cpu)
        if not 0 <= order <= self._maxo:
            return None
        return self._get_page_from_freelist(
            order, alloc_flags, cpu, gfp_migratetype(gfp, self._mobility_disabled))

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        """ALLOC-OP-034: per-CPU list or buddy, by the block's current pageblock type.

        The per-CPU part is ``free_frozen_page_commit`` (ALLOC-OP-023) with ``nr_pcp_high``
        (ALLOC-POL-041) and ``nr_pcp_free`` (ALLOC-POL-042) inlined.
        """
        if not 0 <= cpu < self._nr_cpus:
            raise SpecError(f"cpu {cpu} outside 0..{self._nr_cpus - 1}")
        off = pfn - self._base
        state = self._state
        if not (0 <= off < self._n and state[off] == PAGE_ALLOCATED | order << 2):
            raise SpecError(f"free of pfn {pfn} order {order}: not an allocated block")
        if not self._pcp_allowed[order]:
            state[off] = order << 2
            self._split_large_buddy(off, order, FPI_NONE)
            return
        mt: int = self._pb_eff[off >> self._pbo]
        if mt >= MIGRATE_PCPTYPES:
            if mt == _ISO:
                state[off] = order << 2
                self._split_large_buddy(off, order, FPI_NONE)
                return
            mt = MIGRATE_MOVABLE
        pcp = self._pcp[cpu]
        pcp.alloc_factor >>= 1
        pindex = self._pindex[order * 8 + mt]
        pcp.lists[pindex].append(off)
        state[off] = PAGE_PCP | order << 2
        count = pcp.count = pcp.count + (1 << order)
        batch = pcp.batch
        free_high = False
        flags = pcp.flags
        if order and order <= PAGE_ALLOC_COSTLY_ORDER:
            threshold = batch if self._v615 else batch + pcp.high_min // 2
            free_high = bool(pcp.free_count >= threshold
                             and flags & PCPF_PREV_FREE_HIGH_ORDER
                             and (not flags & PCPF_FREE_HIGH_BATCH or count >= batch))
            pcp.flags = flags | PCPF_PREV_FREE_HIGH_ORDER
        elif flags & PCPF_PREV_FREE_HIGH_ORDER:
            pcp.flags = flags & ~PCPF_PREV_FREE_HIGH_ORDER
        free_count = pcp.free_count
        if free_count < (batch << _SCALE):
            free_count = pcp.free_count = free_count + (1 << order)
        # nr_pcp_high
        high_min, high_max = pcp.high_min, pcp.high_max
        high = pcp.high
        if high < high_min:  # noqa: PLR1730 (clamp() without calls: hot path)
            high = high_min
        if high > high_max:  # noqa: PLR1730
            high = high_max
        pcp.high = high
        if not high:
            pass
        elif free_high:
            pcp.high = max(high - (batch << _SCALE), high_min)
            high = 0
        elif self._reclaim_active:
            pcp.high = max(high - max(free_count, batch), high_min)
            high = min(batch << 2, pcp.high)
        elif high_min == high_max:
            pass
        elif self._below_high:
            pcp.high = max(high - max(free_count, batch), high_min)
            high = max(count, high_min)
        elif count >= high:
            need_high = free_count + batch
            if high < need_high:
                pcp.high = min(max(need_high, high_min), high_max)
        if count >= high:
            # nr_pcp_free
            if free_high:
                to_free = min(count, batch << _SCALE)
            elif high < batch:
                to_free = 1
            else:
                to_free = min(max(free_count, batch), high - batch)
            self._free_pcppages_bulk(pcp, to_free, pindex)
            if self._below_high and self._zone_watermark_ok(
                    0, self._wmark[WMARK_HIGH] + self._boost, 0, self.nr_free_pages):
                self._below_high = False

    def drain_pages(self, cpu: int) -> None:
        """ALLOC-OP-024: everything on the CPU's lists back to the buddy."""
        self._check_cpu(cpu)
        pcp = self._pcp[cpu]
        while pcp.count:
            self._free_pcppages_bulk(pcp, min(pcp.count, pcp.batch << _SCALE), 0)

    def set_knob(self, name: str, value: int) -> None:
        """ALLOC-OP-035."""
        cfg = self._cfg.with_knob(name, value)
        self._apply_knobs(cfg)
        if name in _SIZING_KNOBS:
            if name != "percpu_pagelist_high_fraction":
                self._wmark = zone_wmarks(cfg)
                self._boost = 0
                self._update_high_mark()
            batch, high_min, high_max = pcp_batch_high(cfg, self._wmark[WMARK_LOW])
            for pcp in self._pcp:
                pcp.batch, pcp.high_min, pcp.high_max = batch, high_min, high_max

    def _check_pageblock(self, pageblock: int) -> None:
        if not 0 <= pageblock < self._nr_pageblocks:
            raise SpecError(f"pageblock {pageblock} outside the zone")

    def isolate_pageblock(self, pageblock: int) -> bool:
        """ALLOC-OP-036."""
        self._check_pageblock(pageblock)
        if self._pb_iso[pageblock]:
            return False
        self._move_freepages_block_isolate(pageblock << self._pbo, True)
        return True

    def unisolate_pageblock(self, pageblock: int) -> bool:
        """ALLOC-OP-037."""
        self._check_pageblock(pageblock)
        if not self._pb_iso[pageblock]:
            return False
        pbo = self._pbo
        off = pageblock << pbo
        mt: int = self._pb_mt[pageblock]
        if self._state[off] == PAGE_BUDDY | pbo << 2 and pbo < self._maxo:
            buddy = off ^ (1 << pbo)
            if (self._page_is_buddy(buddy, pbo) and self._pb_eff[buddy >> pbo] != _ISO):
                self._del_from_free_list_raw(off, pbo, _ISO)
                self._set_pageblock_migratetype(off, mt)
                self._free_one_page(off, pbo, mt, FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL)
                return True
        self._move_freepages_block_isolate(off, False)
        return True

    def unreserve_highatomic_pageblock(self, migratetype: int, force: bool) -> bool:
        """ALLOC-OP-015 as an operation."""
        if migratetype not in (0, 1, 2):
            raise SpecError("unreserve converts to a pcp migratetype")
        if self._mobility_disabled:
            migratetype = MIGRATE_UNMOVABLE
        pbnr = self._pbnr
        if not force and self.nr_reserved_highatomic <= pbnr:
            return False
        nxt, n = self._next, self._n
        for order in range(self._norders):
            head = n + order * _NR_MT + _HA
            off: int = nxt[head]
            if off == head:
                continue
            mt: int = self._pb_eff[off >> self._pbo]
            if mt == _HA:
                size = min(max(pbnr, 1 << order), self.nr_reserved_highatomic)
                self.nr_reserved_highatomic -= size
            if order < self._pbo:
                ret = self._move_freepages_block(off, mt, migratetype)
            else:
                self._move_to_free_list(off, order, mt, migratetype)
                self._change_pageblock_range(off, order, migratetype)
                ret = 1
            if ret > 0:
                return True
        return False

    # --- the abstraction function ----------------------------------------------------------

    def _walk(self, head: int) -> tuple[int, ...]:
        nxt, base = self._next, self._base
        out = []
        x: int = nxt[head]
        while x != head:
            out.append(x + base)
            x = nxt[x]
        return tuple(out)

    def abstract(self) -> SpecZone:
        """The spec's :class:`spec.zone.Zone` for the current state."""
        n, base, walk = self._n, self._base, self._walk
        free_area = tuple(tuple(walk(n + o * _NR_MT + mt) for mt in range(_NR_MT))
                          for o in range(self._norders))
        pcp = tuple(PerCpuPages(tuple(tuple(x + base for x in reversed(lst)) for lst in p.lists),
                                p.count, p.high, p.high_min, p.high_max, p.batch,
                                p.alloc_factor, p.free_count, p.flags)
                    for p in self._pcp)
        state, mtarr = self._state, self._mt
        allocated = []
        find = bytes(state).translate(_ALLOCATED_TABLE).find
        i = find(1)
        while i >= 0:
            so: int = state[i]
            allocated.append(Allocation(i + base, so >> 2, int(mtarr[i])))
            i = find(1, i + 1)
        flags = set()
        if self._below_high:
            flags.add(ZONE_BELOW_HIGH)
        if self._boosted:
            flags.add(ZONE_BOOSTED_WATERMARK)
        if self._reclaim_active:
            flags.add(ZONE_RECLAIM_ACTIVE)
        return SpecZone(
            config=self._cfg,
            pageblock_migratetype=tuple([int(mt) for mt in self._pb_mt]),
            pageblock_isolate=tuple([b != 0 for b in self._pb_iso]),
            free_area=free_area,
            nr_free=tuple(self._nr_free),
            nr_free_pages=self.nr_free_pages,
            nr_free_pages_blocks=self.nr_free_pages_blocks,
            nr_free_cma_pages=self.nr_free_cma_pages,
            nr_free_highatomic=self.nr_free_highatomic,
            nr_reserved_highatomic=self.nr_reserved_highatomic,
            watermark=tuple(self._wmark),
            watermark_boost=self._boost,
            flags=frozenset(flags),
            pcp=pcp,
            allocated=frozenset(allocated),
        )

    # --- pageblock flags -------------------------------------------------------------------

    def _set_pageblock_migratetype(self, off: int, mt: int) -> None:
        if self._mobility_disabled and mt < MIGRATE_PCPTYPES:
            mt = MIGRATE_UNMOVABLE
        pb = off >> self._pbo
        self._pb_mt[pb] = mt
        self._pb_iso[pb] = 0
        self._pb_eff[pb] = mt

    def _set_pageblock_isolate(self, pb: int, isolate: bool) -> None:
        self._pb_iso[pb] = 1 if isolate else 0
        self._pb_eff[pb] = _ISO if isolate else self._pb_mt[pb]

    def _change_pageblock_range(self, off: int, start_order: int, mt: int) -> None:
        for i in range(1 << (start_order - self._pbo)):
            self._set_pageblock_migratetype(off + i * self._pbnr, mt)

    # --- free-list primitives (ALLOC-OP-001) -------------------------------------------------

    def _account_freepages(self, nr_pages: int, mt: int) -> None:
        if mt == _ISO:
            return
        self.nr_free_pages += nr_pages
        if mt == MIGRATE_CMA:
            self.nr_free_cma_pages += nr_pages
        elif mt == _HA:
            self.nr_free_highatomic += nr_pages

    def _add_to_free_list(self, off: int, order: int, mt: int, tail: bool) -> None:
        if self._pb_eff[off >> self._pbo] != mt:
            raise SpecError(f"page type is {self._pb_eff[off >> self._pbo]}, passed "
                            f"migratetype is {mt} (pfn={off + self._base}, nr={1 << order})")
        nxt, prv = self._next, self._prev
        head = self._n + order * _NR_MT + mt
        if tail:
            last: int = prv[head]
            prv[off] = last
            nxt[off] = head
            nxt[last] = off
            prv[head] = off
        else:
            first: int = nxt[head]
            nxt[off] = first
            prv[off] = head
            prv[first] = off
            nxt[head] = off
        self._state[off] = PAGE_BUDDY | order << 2
        self._mt[off] = mt
        self._nr_free[order] += 1
        if order >= self._pbo and mt != _ISO:
            self.nr_free_pages_blocks += 1 << order

    def _move_to_free_list(self, off: int, order: int, old_mt: int, new_mt: int) -> None:
        if self._pb_eff[off >> self._pbo] != old_mt:
            raise SpecError(f"move_to_free_list: block of pfn {off + self._base} is not of "
                            f"type {old_mt}")
        nxt, prv = self._next, self._prev
        a: int = prv[off]
        b: int = nxt[off]
        nxt[a] = b
        prv[b] = a
        head = self._n + order * _NR_MT + new_mt
        last: int = prv[head]
        prv[off] = last
        nxt[off] = head
        nxt[last] = off
        prv[head] = off
        self._mt[off] = new_mt
        size = 1 << order
        self._account_freepages(-size, old_mt)
        self._account_freepages(size, new_mt)
        if order >= self._pbo and (old_mt == _ISO) != (new_mt == _ISO):
            self.nr_free_pages_blocks += size if old_mt == _ISO else -size

    def _del_from_free_list_raw(self, off: int, order: int, mt: int) -> None:
        if self._pb_eff[off >> self._pbo] != mt:
            raise SpecError(f"del: block of pfn {off + self._base} is not of type {mt}")
        nxt, prv = self._next, self._prev
        a: int = prv[off]
        b: int = nxt[off]
        nxt[a] = b
        prv[b] = a
        self._state[off] = order << 2
        self._nr_free[order] -= 1
        if order >= self._pbo and mt != _ISO:
            self.nr_free_pages_blocks -= 1 << order

    def _del_page_from_free_list(self, off: int, order: int, mt: int) -> None:
        self._del_from_free_list_raw(off, order, mt)
        self._account_freepages(-(1 << order), mt)

    def _page_is_buddy(self, off: int, order: int) -> bool:
        return off < self._n and self._state[off] == PAGE_BUDDY | order << 2

    # --- freeing into the buddy (ALLOC-OP-002, ALLOC-OP-003) ----------------------------------

    def _free_one_page(self, off: int, order: int, mt: int, fpi_flags: int) -> None:
        """``__free_one_page``: account, merge while the buddy is free, insert head or tail."""
        if mt != _ISO:
            self.nr_free_pages += 1 << order
            if mt == MIGRATE_CMA:
                self.nr_free_cma_pages += 1 << order
            elif mt == _HA:
                self.nr_free_highatomic += 1 << order
        self._merge_and_add(off, order, mt, fpi_flags)

    def _merge_and_add(self, off: int, order: int, mt: int, fpi_flags: int) -> None:
        """The merge loop and insertion of ``__free_one_page`` (the pages are accounted)."""
        state, eff = self._state, self._pb_eff
        nxt, prv, nr_free = self._next, self._prev, self._nr_free
        n, pbo, maxo = self._n, self._pbo, self._maxo
        buddy = 0
        while order < maxo:
            buddy = off ^ (1 << order)
            if buddy >= n or state[buddy] != PAGE_BUDDY | order << 2:
                break
            if order >= pbo:
                buddy_mt: int = eff[buddy >> pbo]
                if buddy_mt != mt and (mt >= MIGRATE_PCPTYPES
                                       or buddy_mt >= MIGRATE_PCPTYPES):
                    break
                if buddy_mt != _ISO:
                    self.nr_free_pages_blocks -= 1 << order
            else:
                buddy_mt = mt
                if eff[buddy >> pbo] != mt:
                    raise SpecError(f"del: block of pfn {buddy + self._base} is not of "
                                    f"type {mt}")
            nxt_b: int = nxt[buddy]
            prv_b: int = prv[buddy]
            nxt[prv_b] = nxt_b
            prv[nxt_b] = prv_b
            state[buddy] = order << 2
            nr_free[order] -= 1
            if buddy_mt != mt:
                self._change_pageblock_range(buddy, order, mt)
            off &= buddy
            order += 1
        if fpi_flags & FPI_TO_TAIL:
            tail = True
        elif order >= maxo - 1:
            tail = False
        else:
            higher = (buddy & off) ^ (1 << (order + 1))
            tail = higher < n and state[higher] == PAGE_BUDDY | (order + 1) << 2
        self._add_to_free_list(off, order, mt, tail)

    def _split_large_buddy(self, off: int, order: int, fpi_flags: int) -> None:
        end = off + (1 << order)
        order = min(order, self._pbo)
        eff, pbo = self._pb_eff, self._pbo
        while True:
            self._free_one_page(off, order, int(eff[off >> pbo]), fpi_flags)
            off += 1 << order
            if off == end:
                break

    # --- splitting (ALLOC-OP-004, ALLOC-OP-005) ------------------------------------------------

    def _expand(self, off: int, low: int, high: int, mt: int) -> int:
        size = 1 << high
        nr_added = 0
        while high > low:
            high -= 1
            size >>= 1
            self._add_to_free_list(off + size, high, mt, False)
            nr_added += size
        return nr_added

    def _page_del_and_expand(self, off: int, low: int, high: int, mt: int) -> None:
        self._del_from_free_list_raw(off, high, mt)
        nr_pages = (1 << high) - self._expand(off, low, high, mt)
        self._account_freepages(-nr_pages, mt)

    def _rmqueue_smallest(self, order: int, mt: int) -> int | None:
        """``__rmqueue_smallest``: head of the first non-empty list, split on the same type."""
        nxt = self._next
        head = self._n + order * _NR_MT + mt
        for current_order in range(order, self._norders):
            off: int = nxt[head]
            if off != head:
                self._page_del_and_expand(off, order, current_order, mt)
                return off
            head += _NR_MT
        return None

    # --- pageblock moves (ALLOC-OP-006, isolation) ----------------------------------------------

    def _count_block_pages(self, start: int) -> tuple[int, int]:
        """``prep_move_freepages_block``'s census: free pages and pages of MOVABLE requests.

        A pageblock is partitioned into aligned blocks (free, per-CPU, allocated), each with
        its head's state and order, so the walk steps from head to head; a block larger than
        the pageblock starts at its first page and ends the walk.
        """
        state, mtarr = self._state, self._mt
        end = start + self._pbnr
        free_pages = movable_pages = 0
        p = start
        while p < end:
            so: int = state[p]
            s = so & 3
            o = so >> 2
            size = 1 << o
            if s == PAGE_BUDDY:
                free_pages += size
            elif s == PAGE_ALLOCATED and mtarr[p] == MIGRATE_MOVABLE:
                movable_pages += min(size, end - p)
            p += size
        return free_pages, movable_pages

    def _move_freepages_block(self, off: int, old_mt: int, new_mt: int) -> int:
        start = off & ~(self._pbnr - 1)
        state = self._state
        end = start + self._pbnr
        moved = 0
        p = start
        while p < end:
            so: int = state[p]
            o = so >> 2
            size = 1 << o
            if so & 3 == PAGE_BUDDY:
                self._move_to_free_list(p, o, old_mt, new_mt)
                moved += size
            p += size
        self._set_pageblock_migratetype(start, new_mt)
        return moved

    def _find_large_buddy(self, start: int) -> int:
        state = self._state
        order = 0
        p = start
        while state[p] & 3 != PAGE_BUDDY:
            order += 1
            if order > self._maxo:
                return start
            p &= -1 << order
        so: int = state[p]
        o = so >> 2
        if p + (1 << o) > start:
            return p
        return start

    def _move_freepages_block_isolate(self, off: int, isolate: bool) -> None:
        pbo = self._pbo
        start = off & ~(self._pbnr - 1)
        pb = start >> pbo
        if pbo != self._maxo:
            # A free buddy larger than the block, starting before it or at it, is split.
            big = self._find_large_buddy(start)
            start_so: int = self._state[start]
            if big == start and not (start_so & 3 == PAGE_BUDDY and start_so >> 2 > pbo):
                big = -1
            if big >= 0:
                big_so: int = self._state[big]
                order = big_so >> 2
                mt: int = self._mt[big]
                self._del_page_from_free_list(big, order, mt)
                self._set_pageblock_isolate(pb, isolate)
                self._split_large_buddy(big, order, FPI_NONE)
                return
        old_mt: int = self._pb_eff[pb]
        new_mt: int = _ISO if isolate else self._pb_mt[pb]
        state = self._state
        p = start
        end = start + self._pbnr
        while p < end:
            so: int = state[p]
            o = so >> 2
            if so & 3 == PAGE_BUDDY:
                self._move_to_free_list(p, o, old_mt, new_mt)
            p += 1 << o
        self._set_pageblock_isolate(pb, isolate)

    # --- fallbacks (ALLOC-OP-010 .. ALLOC-OP-015) ---------------------------------------------

    def _find_suitable_fallback(self, order: int, mt: int, claimable: bool) -> int:
        """-2: claiming not worth it at this order (should_try_claim_block, ALLOC-POL-030);
        -1: nothing here; else the first non-empty fallback type."""
        if claimable and not (order >= self._pbo or order >= self._pbo // 2
                              or mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
                              or self._mobility_disabled):
            return -2
        if not self._nr_free[order]:
            return -1
        nxt = self._next
        base = self._n + order * _NR_MT
        for fallback_mt in FALLBACKS[mt]:
            if nxt[base + fallback_mt] != base + fallback_mt:
                return fallback_mt
        return -1

    def _boost_watermark(self) -> bool:
        factor = self._boost_factor
        if not factor:
            return False
        pbnr = self._pbnr
        if pbnr * 4 > self._managed:
            return False
        max_boost = self._wmark[WMARK_HIGH] * factor // 10000
        if not max_boost:
            return False
        max_boost = max(pbnr, max_boost)
        self._boost = min(self._boost + pbnr, max_boost)
        self._update_high_mark()
        return True

    def _try_to_claim_block(self, off: int, current_order: int, order: int, start_type: int,
                            block_type: int, alloc_flags: int) -> int | None:
        if current_order >= self._pbo:
            self._del_page_from_free_list(off, current_order, block_type)
            self._change_pageblock_range(off, current_order, start_type)
            nr_added = self._expand(off, order, current_order, start_type)
            self._account_freepages(nr_added, start_type)
            return off
        if self._boost_watermark() and alloc_flags & ALLOC_KSWAPD:
            self._boosted = True
        start = off & ~(self._pbnr - 1)
        free_pages, movable_pages = self._count_block_pages(start)
        if start_type == MIGRATE_MOVABLE:
            alike_pages = movable_pages
        elif block_type == MIGRATE_MOVABLE:
            alike_pages = self._pbnr - (free_pages + movable_pages)
        else:
            alike_pages = 0
        if (free_pages + alike_pages >= (1 << (self._pbo - 1))
                or self._mobility_disabled):
            self._move_freepages_block(start, block_type, start_type)
            return self._rmqueue_smallest(order, start_type)
        return None

    def _rmqueue_claim(self, order: int, start_mt: int, alloc_flags: int) -> int | None:
        min_order = order
        if order < self._pbo and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = self._pbo
        nxt = self._next
        for current_order in range(self._maxo, min_order - 1, -1):
            fallback_mt = self._find_suitable_fallback(current_order, start_mt, True)
            if fallback_mt == -1:
                continue
            if fallback_mt == -2:
                break
            off: int = nxt[self._n + current_order * _NR_MT + fallback_mt]
            page = self._try_to_claim_block(off, current_order, order, start_mt, fallback_mt,
                                            alloc_flags)
            if page is not None:
                return page
        return None

    def _rmqueue_steal(self, order: int, start_mt: int) -> int | None:
        for current_order in range(order, self._norders):
            fallback_mt = self._find_suitable_fallback(current_order, start_mt, False)
            if fallback_mt == -1:
                continue
            off: int = self._next[self._n + current_order * _NR_MT + fallback_mt]
            self._page_del_and_expand(off, order, current_order, fallback_mt)
            return off
        return None

    def _rmqueue(self, order: int, mt: int, alloc_flags: int, mode: list[int]) -> int | None:
        """``__rmqueue`` (ALLOC-OP-013); ``mode`` is kept across an ``rmqueue_bulk`` batch."""
        if alloc_flags & ALLOC_CMA and self.nr_free_cma_pages > self.nr_free_pages // 2:
            page = self._rmqueue_smallest(order, MIGRATE_CMA)
            if page is not None:
                return page
        level = mode[0]
        if level <= RMQUEUE_NORMAL:
            page = self._rmqueue_smallest(order, mt)
            if page is not None:
                return page
        if level <= RMQUEUE_CMA and alloc_flags & ALLOC_CMA:
            page = self._rmqueue_smallest(order, MIGRATE_CMA)
            if page is not None:
                mode[0] = RMQUEUE_CMA
                return page
        if level <= RMQUEUE_CLAIM:
            page = self._rmqueue_claim(order, mt, alloc_flags)
            if page is not None:
                mode[0] = RMQUEUE_NORMAL
                return page
        if not alloc_flags & ALLOC_NOFRAGMENT:
            page = self._rmqueue_steal(order, mt)
            if page is not None:
                mode[0] = RMQUEUE_STEAL
                return page
        return None

    def _reserve_highatomic_pageblock(self, off: int, order: int) -> None:
        pbnr = self._pbnr
        if self._managed // 100 < pbnr:
            return
        if self.nr_reserved_highatomic >= self._highatomic_max:
            return
        mt: int = self._pb_eff[off >> self._pbo]
        if mt >= MIGRATE_PCPTYPES:
            return
        if order < self._pbo:
            self._move_freepages_block(off, mt, _HA)
            self.nr_reserved_highatomic += pbnr
        else:
            self._change_pageblock_range(off, order, _HA)
            self.nr_reserved_highatomic += 1 << order

    # --- watermarks (ALLOC-POL-012 .. ALLOC-POL-015) -------------------------------------------

    def _zone_watermark_ok(self, order: int, mark: int, alloc_flags: int,
                           free_pages: int) -> bool:
        free_pages -= (1 << order) - 1
        if not alloc_flags & ALLOC_RESERVES:
            free_pages -= self.nr_free_highatomic
        if not alloc_flags & ALLOC_CMA:
            free_pages -= self.nr_free_cma_pages
        wmin = mark
        if alloc_flags & ALLOC_RESERVES:
            if alloc_flags & ALLOC_MIN_RESERVE:
                wmin -= wmin // 2
                if alloc_flags & ALLOC_NON_BLOCK:
                    wmin -= wmin // 4
            if alloc_flags & ALLOC_OOM:
                wmin -= wmin // 2
        if free_pages <= wmin + self._lowmem_reserve:
            return False
        if order == 0:
            return True
        nxt, nr_free = self._next, self._nr_free
        head = self._n + order * _NR_MT
        cma = alloc_flags & ALLOC_CMA
        highatomic = alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM)
        for o in range(order, self._norders):
            if nr_free[o]:
                if (nxt[head] != head or nxt[head + 1] != head + 1
                        or nxt[head + 2] != head + 2):
                    return True
                if cma and nxt[head + MIGRATE_CMA] != head + MIGRATE_CMA:
                    return True
                if highatomic and nxt[head + _HA] != head + _HA:
                    return True
            head += _NR_MT
        return False

    def _zone_watermark_fast(self, order: int, mark: int, alloc_flags: int) -> bool:
        free_pages = self.nr_free_pages
        if order == 0:
            reserved = 0
            if not alloc_flags & ALLOC_RESERVES:
                reserved += self.nr_free_highatomic
            if not alloc_flags & ALLOC_CMA:
                reserved += self.nr_free_cma_pages
            if free_pages - min(free_pages, reserved) > mark + self._lowmem_reserve:
                return True
        if self._zone_watermark_ok(order, mark, alloc_flags, free_pages):
            return True
        if (order == 0 and alloc_flags & ALLOC_MIN_RESERVE and self._boost
                and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN):
            return self._zone_watermark_ok(order, self._wmark[WMARK_MIN], alloc_flags,
                                           free_pages)
        return False

    # --- per-CPU lists (ALLOC-OP-020 .. ALLOC-OP-023) ------------------------------------------

    def _nr_pcp_alloc(self, pcp: _Pcp, order: int) -> int:
        base_batch = pcp.batch
        high = pcp.high = min(max(pcp.high, pcp.high_min), pcp.high_max)
        if high < base_batch:
            return 1
        batch = base_batch if order else base_batch << pcp.alloc_factor
        if pcp.high_min != pcp.high_max and not self._below_high:
            high = pcp.high = min(high + batch, pcp.high_max)
        if not order:
            max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
            if batch <= max_nr_alloc and pcp.alloc_factor < _SCALE:
                pcp.alloc_factor += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def _rmqueue_bulk(self, order: int, count: int, lst: list[int], mt: int,
                      alloc_flags: int) -> int:
        """``rmqueue_bulk``: up to ``count`` blocks, each appended to the list's tail (the
        front of ``lst``, which is stored tail first)."""
        nxt, prv, state = self._next, self._prev, self._state
        got: list[int] = []
        append = got.append
        pcp_state = PAGE_PCP | order << 2
        taken = 0
        # While __rmqueue's first choice is __rmqueue_smallest of the requested (pcp) type,
        # with no CMA preference, run __rmqueue_smallest inline: every block taken and split
        # here is on a list of a mergeable type, so only NR_FREE_PAGES and
        # NR_FREE_PAGES_BLOCKS change, and they are written once at the end.
        if mt < MIGRATE_PCPTYPES and not (alloc_flags & ALLOC_CMA and self.nr_free_cma_pages):
            nr_free, eff, mtarr = self._nr_free, self._pb_eff, self._mt
            pbo, maxo = self._pbo, self._maxo
            exact = self._n + order * _NR_MT + mt
            blocks = 0
            while taken < count:
                head = exact
                current_order = order
                off: int = nxt[head]
                while off == head and current_order < maxo:
                    current_order += 1
                    head += _NR_MT
                    off = nxt[head]
                if off == head:
                    break
                if eff[off >> pbo] != mt:
                    raise SpecError(f"del: block of pfn {off + self._base} is not of "
                                    f"type {mt}")
                after: int = nxt[off]
                nxt[head] = after
                prv[after] = head
                nr_free[current_order] -= 1
                size = 1 << current_order
                if current_order >= pbo:
                    blocks -= size
                while current_order > order:
                    current_order -= 1
                    size >>= 1
                    head -= _NR_MT
                    x = off + size
                    if current_order >= pbo:
                        if eff[x >> pbo] != mt:
                            raise SpecError(f"page type is {eff[x >> pbo]}, passed "
                                            f"migratetype is {mt} (pfn={x + self._base})")
                        blocks += size
                    first: int = nxt[head]
                    nxt[x] = first
                    prv[x] = head
                    prv[first] = x
                    nxt[head] = x
                    state[x] = PAGE_BUDDY | current_order << 2
                    mtarr[x] = mt
                    nr_free[current_order] += 1
                append(off)
                state[off] = pcp_state
                taken += 1
            self.nr_free_pages -= taken << order
            self.nr_free_pages_blocks += blocks
        mode = [RMQUEUE_NORMAL]
        while taken < count:
            page = self._rmqueue(order, mt, alloc_flags, mode)
            if page is None:
                break
            append(page)
            state[page] = pcp_state
            taken += 1
        if taken:
            got.reverse()
            lst[0:0] = got
        return taken

    def _free_pcppages_bulk(self, pcp: _Pcp, count: int, pindex: int) -> None:
        """``free_pcppages_bulk``: round-robin over the lists, each drained from its tail.

        Each block is freed with ``__free_one_page`` under its pageblock's current type; the
        merging below pageblock order (one pageblock, one type) is inlined, the rest is
        :meth:`_merge_and_add`.
        """
        count = min(pcp.count, count)
        nxt, prv, state = self._next, self._prev, self._state
        eff, mtarr, nr_free = self._pb_eff, self._mt, self._nr_free
        pindex_order, npcp, lists = self._pindex_order, self._npcp, pcp.lists
        n, pbo, tail_below = self._n, self._pbo, self._maxo - 1
        merge_and_add = self._merge_and_add
        pcp_count = pcp.count
        nr_freed = 0
        pindex -= 1
        while count > 0:
            while True:
                pindex += 1
                if pindex >= npcp:
                    pindex = 0
                lst = lists[pindex]
                if lst:
                    break
            # The tail is the front of the list: take from there, cut once at the end.
            taken = 0
            length = len(lst)
            order = pindex_order[pindex]
            nr_pages = 1 << order
            while True:
                off = lst[taken]
                taken += 1
                state[off] = order << 2
                count -= nr_pages
                pcp_count -= nr_pages
                mt: int = eff[off >> pbo]
                if mt < MIGRATE_PCPTYPES:
                    nr_freed += nr_pages
                elif mt != _ISO:
                    self._account_freepages(nr_pages, mt)
                o = order
                buddy = 0
                # Below pageblock order the buddy lies in the same pageblock (in the zone,
                # of the same type), and so does the merged block: no range or type checks.
                while o < pbo:
                    buddy = off ^ (1 << o)
                    if state[buddy] != PAGE_BUDDY | o << 2:
                        break
                    nxt_b: int = nxt[buddy]
                    prv_b: int = prv[buddy]
                    nxt[prv_b] = nxt_b
                    prv[nxt_b] = prv_b
                    state[buddy] = o << 2
                    nr_free[o] -= 1
                    off &= buddy
                    o += 1
                else:
                    merge_and_add(off, o, mt, FPI_NONE)
                    if count <= 0 or taken == length:
                        break
                    continue
                higher = (buddy & off) ^ (2 << o)
                free_head = n + o * _NR_MT + mt
                if (o < tail_below and higher < n
                        and state[higher] == PAGE_BUDDY | (o + 1) << 2):
                    tail_node: int = prv[free_head]
                    prv[off] = tail_node
                    nxt[off] = free_head
                    nxt[tail_node] = off
                    prv[free_head] = off
                else:
                    first: int = nxt[free_head]
                    nxt[off] = first
                    prv[off] = free_head
                    prv[first] = off
                    nxt[free_head] = off
                state[off] = PAGE_BUDDY | o << 2
                mtarr[off] = mt
                nr_free[o] += 1
                if count <= 0 or taken == length:
                    break
            del lst[:taken]
        pcp.count = pcp_count
        self.nr_free_pages += nr_freed

    def _rmqueue_pcplist(self, cpu: int, order: int, mt: int, alloc_flags: int) -> int | None:
        pcp = self._pcp[cpu]
        pcp.free_count >>= 1
        lst = pcp.lists[self._pindex[order * 8 + mt]]
        if not lst:
            batch = self._nr_pcp_alloc(pcp, order)
            pcp.count += self._rmqueue_bulk(order, batch, lst, mt, alloc_flags) << order
            if not lst:
                return None
        pcp.count -= 1 << order
        return lst.pop()

    # --- allocation (ALLOC-OP-031, ALLOC-OP-032) -------------------------------------------------

    def _rmqueue_zone(self, cpu: int, order: int, alloc_flags: int, mt: int) -> int | None:
        page = None
        if self._pcp_allowed[order]:
            page = self._rmqueue_pcplist(cpu, order, mt, alloc_flags)
        if page is None:
            if alloc_flags & ALLOC_HIGHATOMIC:
                page = self._rmqueue_smallest(order, _HA)
            if page is None:
                page = self._rmqueue(order, mt, alloc_flags, [RMQUEUE_NORMAL])
                if page is None and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                    page = self._rmqueue_smallest(order, _HA)
        if alloc_flags & ALLOC_KSWAPD and self._boosted:
            self._boosted = False
        return page

    def _get_page_from_freelist(self, order: int, alloc_flags: int, cpu: int,
                                mt: int) -> int | None:
        while True:
            passed = False
            if not self._below_high:
                if self._zone_watermark_fast(order, self._wmark[WMARK_HIGH] + self._boost,
                                             alloc_flags):
                    passed = True
                else:
                    self._below_high = True
            if not passed:
                mark = self._wmark[alloc_flags & ALLOC_WMARK_MASK] + self._boost
                passed = (self._zone_watermark_fast(order, mark, alloc_flags)
                          or bool(alloc_flags & ALLOC_NO_WATERMARKS))
            if passed:
                off = self._rmqueue_zone(cpu, order, alloc_flags, mt)
                if off is not None:
                    self._state[off] = PAGE_ALLOCATED | order << 2
                    self._mt[off] = mt
                    if alloc_flags & ALLOC_HIGHATOMIC:
                        self._reserve_highatomic_pageblock(off, order)
                    return off + self._base
            if alloc_flags & ALLOC_NOFRAGMENT and not self._defrag_mode:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                continue
            return None


__all__ = ["Zone"]
