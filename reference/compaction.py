"""Reference compaction on the reference zone's arrays (ALLOC-OP-053..055, ALLOC-POL-052..054).

Pageblocks are visited through the per-page state bytes (a free buddy head is
``PAGE_BUDDY | order << 2``, its list type in ``_mt``); the free scanner keeps its isolated
blocks in a per-order pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import spec.constants as _c
from reference.page_alloc import FPI_NONE, PAGE_ALLOCATED, PAGE_BUDDY

if TYPE_CHECKING:
    from reference.vmscan import Memory

COMPACT_SKIPPED = "COMPACT_SKIPPED"
COMPACT_DEFERRED = "COMPACT_DEFERRED"
COMPACT_CONTINUE = "COMPACT_CONTINUE"
COMPACT_COMPLETE = "COMPACT_COMPLETE"
COMPACT_SUCCESS = "COMPACT_SUCCESS"
MIN_COMPACT_PRIORITY = 0
MIN_COMPACT_COSTLY_PRIORITY = 1
DEF_COMPACT_PRIORITY = 1
INIT_COMPACT_PRIORITY = 2
_LRU = ("anon", "file")


class _Cc:
    __slots__ = ("order", "mt", "flags", "async_", "direct", "ignore_suitable", "capture",
                 "captured", "migrate_scanned", "free_scanned")

    def __init__(self, order: int, mt: int, flags: int, async_: bool, direct: bool,
                 ignore_suitable: bool = False, capture: bool = False) -> None:
        self.order, self.mt, self.flags = order, mt, flags
        self.async_, self.direct = async_, direct
        self.ignore_suitable, self.capture = ignore_suitable, capture
        self.captured: int | None = None
        self.migrate_scanned = 0
        self.free_scanned = 0


def compaction_suitable(m: Memory, order: int, watermark: int, free: int) -> bool:
    return m.watermark_ok(0, watermark + (2 << order), _c.ALLOC_CMA, free)


def _suit(m: Memory, order: int, flags: int, kcompactd: bool) -> str:
    z = m.zone
    goal = kcompactd and m.defrag_mode and "pageblock_watermarks" in m.features
    if goal:
        if m.watermark_ok(order, m.wmark(_c.WMARK_HIGH), flags, z.nr_free_pages_blocks):
            return COMPACT_SUCCESS
    elif m.watermark_ok(order, m.wmark(flags & _c.ALLOC_WMARK_MASK), flags, z.nr_free_pages):
        return COMPACT_SUCCESS
    mark = m.wmark(_c.WMARK_HIGH if goal else _c.WMARK_MIN)
    if not compaction_suitable(m, order, mark, z.nr_free_pages):
        return COMPACT_SKIPPED
    return COMPACT_CONTINUE


def _finished(m: Memory, cc: _Cc, migrate_pb: int, free_pb: int) -> str:
    z = m.zone
    if migrate_pb >= free_pb:
        return COMPACT_COMPLETE
    if cc.captured is not None:
        return COMPACT_SUCCESS
    if not cc.direct and m.defrag_mode and "pageblock_watermarks" in m.features:
        if m.watermark_ok(cc.order, m.wmark(_c.WMARK_HIGH), cc.flags, z.nr_free_pages_blocks):
            return COMPACT_SUCCESS
        return COMPACT_CONTINUE
    nxt, n = z._next, z._n
    for order in range(cc.order, z._norders):
        head = n + order * _c.MIGRATE_TYPES + cc.mt
        if nxt[head] != head:
            return COMPACT_SUCCESS
        if order >= z._pbo and z._nr_free[order]:
            return COMPACT_SUCCESS
        if cc.mt < _c.MIGRATE_PCPTYPES and z._find_suitable_fallback(order, cc.mt, True) >= 0:
            return COMPACT_SUCCESS
    return COMPACT_CONTINUE


def _isolate_free(m: Memory, off: int, order: int) -> bool:
    z = m.zone
    if not m.watermark_ok(0, z._wmark[_c.WMARK_MIN] + (1 << order), _c.ALLOC_CMA,
                          z.nr_free_pages):
        return False
    mt = int(z._mt[off])
    z._del_page_from_free_list(off, order, mt)
    if order >= z._pbo - 1:
        p = off & ~(z._pbnr - 1)
        while p < off + (1 << order):
            if z._pb_eff[p >> z._pbo] < _c.MIGRATE_PCPTYPES:
                z._set_pageblock_migratetype(p, _c.MIGRATE_MOVABLE)
            p += z._pbnr
    return True


def _capture(m: Memory, cc: _Cc, freed: list[int]) -> None:
    z = m.zone
    state = z._state
    for src in freed:
        # the free buddy that holds src: its head is src rounded down at some order
        for order in range(z._norders):
            head = src & ~((1 << order) - 1)
            if state[head] != PAGE_BUDDY | order << 2 or head + (1 << order) <= src:
                continue
            if order < cc.order:
                break
            bmt = int(z._mt[head])
            if bmt in (_c.MIGRATE_CMA, _c.MIGRATE_ISOLATE) or (
                    bmt >= _c.MIGRATE_PCPTYPES and bmt != _c.MIGRATE_MOVABLE):
                break
            if bmt == _c.MIGRATE_MOVABLE and cc.order < z._pbo and cc.mt != _c.MIGRATE_MOVABLE:
                break
            want = src & ~((1 << cc.order) - 1)
            z._del_page_from_free_list(head, order, bmt)
            while order > cc.order:
                order -= 1
                half = head + (1 << order)
                if want >= half:
                    other, head = head, half
                else:
                    other = half
                omt = int(z._pb_eff[other >> z._pbo])
                z._add_to_free_list(other, order, omt, False)
                z._account_freepages(1 << order, omt)
            state[want] = PAGE_ALLOCATED | cc.order << 2
            z._mt[want] = cc.mt
            cc.captured = want + z._base
            m.stats["compact_capture"] += 1
            if bmt != cc.mt:
                m.stats["compact_capture_pollute"] += 1
            return
        else:
            continue


def compact_zone(m: Memory, cc: _Cc) -> str:
    z = m.zone
    ret = _suit(m, cc.order, cc.flags, not cc.direct)
    if ret != COMPACT_CONTINUE:
        return ret
    pbo, pbn, state = z._pbo, z._pbnr, z._state
    free_pb = z._nr_pageblocks
    migrate_pb = 0
    pool: list[tuple[int, int]] = []  # (offset, order)

    def isolate_more() -> bool:
        nonlocal free_pb
        while free_pb - 1 > migrate_pb:
            free_pb -= 1
            start = free_pb << pbo
            s0 = state[start]
            if s0 & 3 == PAGE_BUDDY and s0 >> 2 >= pbo:
                continue
            if z._pb_iso[free_pb]:
                continue
            if not cc.ignore_suitable and z._pb_mt[free_pb] not in (_c.MIGRATE_MOVABLE,
                                                                    _c.MIGRATE_CMA):
                continue
            cc.free_scanned += pbn
            got = False
            for off in range(start, start + pbn):
                s = state[off]
                if s & 3 != PAGE_BUDDY or z._pb_eff[off >> pbo] == _c.MIGRATE_ISOLATE:
                    continue
                order = s >> 2
                if _isolate_free(m, off, order):
                    pool.append((off, order))
                    got = True
            if got:
                return True
        return False

    def alloc(order: int) -> int | None:
        while True:
            best: tuple[int, int] | None = None
            for off, o in pool:
                if o >= order and (best is None or (o, off) < (best[1], best[0])):
                    best = (off, o)
            if best is not None:
                pool.remove(best)
                off, o = best
                while o > order:
                    o -= 1
                    pool.append((off + (1 << o), o))
                return off
            if not isolate_more():
                return None

    while True:
        ret = _finished(m, cc, migrate_pb, free_pb)
        if ret != COMPACT_CONTINUE:
            break
        pb = migrate_pb
        migrate_pb += 1
        if cc.async_ and cc.direct:
            bmt = z._pb_mt[pb]
            if cc.mt == _c.MIGRATE_MOVABLE:
                if bmt not in (_c.MIGRATE_MOVABLE, _c.MIGRATE_CMA):
                    continue
            elif bmt != cc.mt:
                continue
        start = pb << pbo
        cc.migrate_scanned += pbn
        base = z._base
        movable = sorted(pfn for pfn in range(start + base, start + base + pbn)
                         if pfn in m.pages and m.pages[pfn][1] in _LRU)
        freed: list[int] = []
        for pfn in movable:
            order, kind, age = m.pages[pfn]
            target = alloc(order)
            if target is None or target + base < pfn:
                if target is not None:
                    pool.append((target, order))
                break
            state[target] = PAGE_ALLOCATED | order << 2
            z._mt[target] = z._mt[pfn - base]
            del m.pages[pfn]
            m.pages[target + base] = (order, kind, age)
            z.free_pages(pfn, order, 0)
            freed.append(pfn - base)
            m.stats["compact_isolated"] += 2 << order
            m.stats["pgmigrate_success"] += 1 << order
        if freed:
            z.drain_pages(0)
            if cc.capture:
                _capture(m, cc, freed)
    for off, order in pool:
        state[off] = order << 2
        z._split_large_buddy(off, order, FPI_NONE)
    return ret


def try_to_compact_pages(m: Memory, order: int, mt: int, flags: int,
                         prio: int) -> tuple[str, int | None]:
    if order == 0:
        return COMPACT_SKIPPED, None
    cc = _Cc(order, mt, flags, prio == INIT_COMPACT_PRIORITY, True,
             ignore_suitable=prio == MIN_COMPACT_PRIORITY, capture=m.compaction_capture)
    m.stats["compact_stall"] += 1
    ret = compact_zone(m, cc)
    m.stats["compact_migrate_scanned"] += cc.migrate_scanned
    m.stats["compact_free_scanned"] += cc.free_scanned
    return ret, cc.captured


def kcompactd_do_work(m: Memory) -> None:
    if m.kcompactd_order < 0:
        return
    cc = _Cc(m.kcompactd_order, _c.MIGRATE_MOVABLE, _c.WMARK_MIN, False, False)
    m.kcompactd_order = -1
    m.stats["compact_daemon_wake"] += 1
    compact_zone(m, cc)
    m.stats["compact_daemon_migrate_scanned"] += cc.migrate_scanned
    m.stats["compact_daemon_free_scanned"] += cc.free_scanned


__all__ = ["compact_zone", "try_to_compact_pages", "kcompactd_do_work", "compaction_suitable"]
