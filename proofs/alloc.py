"""ALLOC obligations: Z3 proofs over the spec's own arithmetic, and bounded exhaustive checks of
the spec's operations against every invariant of ``spec.invariants``.

The arithmetic obligations call the spec's functions (``spec.buddy``, ``spec.watermark``,
``spec.fallback``, ``spec.pcp``) with Z3 bit-vectors and the :data:`proofs.runner.Z3` backend,
so they check the code the rest of the project runs on ints. Input ranges are the kernel's:
pfns below 2^40, every order up to 39 (every block that fits below 2^40), every value the
sysctls accept (``min_free_kbytes`` and ``watermark_boost_factor`` 0..INT_MAX,
``watermark_scale_factor`` 1..3000, ``percpu_pagelist_high_fraction`` 0 or 8..INT_MAX).
Widths are chosen so that no intermediate value wraps (the spec's Python ints never do); where
the kernel computes in 64 bits, a separate obligation asks whether *it* can wrap.

The bounded obligations are in :mod:`proofs.alloc_bounded`.
"""

from __future__ import annotations

import itertools
from typing import Any

import z3

import spec.constants as C
from proofs.runner import (
    COUNTEREXAMPLE,
    PROVED,
    Z3,
    Outcome,
    all_of,
    check_claim,
    find_witness,
    obligation,
)
from spec.buddy import combined_pfn, find_buddy_pfn, is_aligned, pageblock_align, split_pieces
from spec.fallback import claim_threshold_met, should_try_claim_block
from spec.pcp import nr_pcp_free_pages
from spec.watermark import (
    boosted_watermark,
    highatomic_max,
    pcp_batch_high,
    reserve_adjusted_min,
    setup_per_zone_wmarks,
    watermark_fast_order0_ok,
    watermark_free_ok,
    watermark_max_boost,
    zone_watermark_unusable_free,
)

INT_MAX = (1 << 31) - 1
PFN_LIMIT = 1 << 40
#: Every order a block below 2^40 can have (the kernel's MAX_PAGE_ORDER is at most 15).
ORDER_LIMIT = 40
MAX_PAGE_ORDER = 10


def bv(names: str, width: int = 64) -> list[z3.BitVecRef]:
    return list(z3.BitVecs(names, width))


def ult(a: Any, b: Any) -> Any:
    return z3.ULT(a, b)


def ule(a: Any, b: Any) -> Any:
    return z3.ULE(a, b)


def between(x: Any, lo: int, hi: int) -> Any:
    """lo <= x <= hi, unsigned."""
    return z3.And(z3.UGE(x, lo), z3.ULE(x, hi))


def call(fn: str, **kw: int | bool) -> str:
    return f"{fn}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"


# --- buddy arithmetic (ALLOC-POL-020, ALLOC-OP-002, ALLOC-OP-004) -----------------------------

def _aligned_block(width: int = 64) -> tuple[z3.BitVecRef, z3.BitVecRef, list[Any]]:
    pfn, order = bv("pfn order", width)
    return pfn, order, [ult(pfn, PFN_LIMIT), ult(order, ORDER_LIMIT), is_aligned(pfn, order)]


@obligation("alloc.buddy.involution", ["ALLOC-POL-020"], tags=["z3", "buddy"])
def buddy_involution() -> Outcome:
    """For every aligned block below 2^40 and every order: its buddy is another aligned block
    of the same order below 2^40, and the buddy's buddy is the block itself."""
    pfn, order, pre = _aligned_block()
    b = find_buddy_pfn(pfn, order)
    claim = z3.And(b != pfn, is_aligned(b, order), ult(b, PFN_LIMIT),
                   find_buddy_pfn(b, order) == pfn)
    return check_claim([pfn, order], pre, claim)


@obligation("alloc.buddy.parent", ["ALLOC-POL-020", "ALLOC-OP-002"], tags=["z3", "buddy"])
def buddy_parent() -> Outcome:
    """``combined_pfn(pfn, buddy)`` is the order+1 block made of exactly the two buddies: it is
    aligned to order+1, it is ``pfn`` with bit ``order`` cleared, and it and its upper half are
    the two buddies in some order."""
    pfn, order, pre = _aligned_block()
    b = find_buddy_pfn(pfn, order)
    c = combined_pfn(pfn, b)
    half = 1 << order
    claim = z3.And(is_aligned(c, order + 1), c == pfn & ~half,
                   z3.Or(z3.And(c == pfn, c + half == b), z3.And(c == b, c + half == pfn)))
    return check_claim([pfn, order], pre, claim)


@obligation("alloc.buddy.merge_stays_in_max_block", ["ALLOC-OP-002", "ALLOC-INV-001"],
            tags=["z3", "buddy"])
def merge_stays_in_max_block() -> Outcome:
    """Below MAX_PAGE_ORDER a merge never leaves the MAX_ORDER_NR_PAGES-aligned block of the
    freed pfn (so a zone starting on such a boundary bounds every merge by its end check)."""
    pfn, order, pre = _aligned_block()
    pre = [*pre, ult(order, MAX_PAGE_ORDER)]
    c = combined_pfn(pfn, find_buddy_pfn(pfn, order))
    claim = z3.And(z3.LShR(c, MAX_PAGE_ORDER) == z3.LShR(pfn, MAX_PAGE_ORDER), ule(c, pfn))
    return check_claim([pfn, order], pre, claim)


@obligation("alloc.buddy.split_tiles", ["ALLOC-OP-004"], tags=["z3", "buddy"])
def split_tiles() -> Outcome:
    """``expand`` from ``high`` down to ``low`` (every 0 <= low < high <= MAX_PAGE_ORDER, every
    aligned pfn below 2^40): the pieces it puts back are aligned to their orders, of falling
    order, pairwise disjoint, above the kept block and inside the split one; with the kept
    ``1 << low`` pages they add up to the whole block, so they tile it exactly."""
    def case(low: int, high: int) -> Outcome:
        pfn = z3.BitVec("pfn", 64)
        pieces = split_pieces(pfn, low, high)
        claims = [sum(1 << k for _, k in pieces) + (1 << low) == 1 << high]
        for i, (q, k) in enumerate(pieces):
            claims += [is_aligned(q, k), ule(pfn + (1 << low), q),
                       ule(q + (1 << k), pfn + (1 << high))]
            if i:
                claims.append(pieces[i - 1][1] > k)
            for q2, k2 in pieces[:i]:
                claims.append(z3.Or(ule(q + (1 << k), q2), ule(q2 + (1 << k2), q)))
        return check_claim([pfn], [ult(pfn, PFN_LIMIT), is_aligned(pfn, high)],
                           z3.And(*[c if z3.is_expr(c) else z3.BoolVal(c) for c in claims]))
    return all_of((f"low={lo} high={hi}", case(lo, hi))
                  for hi in range(1, MAX_PAGE_ORDER + 1) for lo in range(hi))


@obligation("alloc.buddy.split_undoes_merge", ["ALLOC-OP-002", "ALLOC-OP-004"],
            tags=["z3", "buddy"])
def split_undoes_merge() -> Outcome:
    """Splitting a merged order+1 block once puts back exactly the upper buddy of its lower
    half: ``expand`` and ``__free_one_page`` are inverse steps (every order below MAX)."""
    def case(order: int) -> Outcome:
        pfn = z3.BitVec("pfn", 64)
        c = combined_pfn(pfn, find_buddy_pfn(pfn, order))
        ((piece, k),) = split_pieces(c, order, order + 1)
        claim = z3.And(k == order, piece == find_buddy_pfn(c, order),
                       z3.Or(piece == pfn, piece == find_buddy_pfn(pfn, order)))
        return check_claim([pfn], [ult(pfn, PFN_LIMIT), is_aligned(pfn, order)], claim)
    return all_of((f"order={o}", case(o)) for o in range(MAX_PAGE_ORDER))


# --- pageblocks (ALLOC-OP-006, ALLOC-INV-003, ALLOC-INV-004) ------------------------------------

def _pageblock(width: int = 64) -> tuple[z3.BitVecRef, z3.BitVecRef, list[Any]]:
    pfn, pbo = bv("pfn pageblock_order", width)
    return pfn, pbo, [ult(pfn, PFN_LIMIT), ule(pbo, MAX_PAGE_ORDER)]


@obligation("alloc.pageblock.range", ["ALLOC-OP-006"], tags=["z3", "pageblock"])
def pageblock_range() -> Outcome:
    """``pageblock_start_pfn`` is aligned to the pageblock, at most ``pfn``, and ``pfn`` lies
    before the pageblock's end, for every pageblock_order up to MAX_PAGE_ORDER."""
    pfn, pbo, pre = _pageblock()
    start = pageblock_align(pfn, pbo)
    claim = z3.And(is_aligned(start, pbo), ule(start, pfn), ult(pfn, start + (1 << pbo)))
    return check_claim([pfn, pbo], pre, claim)


@obligation("alloc.pageblock.same_block", ["ALLOC-OP-006", "ALLOC-INV-004"],
            tags=["z3", "pageblock"])
def pageblock_same_block() -> Outcome:
    """Every pfn of a pageblock has that pageblock's start: the walk of
    ``move_freepages_block`` from start to end stays in one block."""
    pfn, pbo, pre = _pageblock()
    q = z3.BitVec("q", 64)
    start = pageblock_align(pfn, pbo)
    pre = [*pre, ule(start, q), ult(q, start + (1 << pbo))]
    return check_claim([pfn, pbo, q], pre, pageblock_align(q, pbo) == start)


@obligation("alloc.pageblock.small_buddies_share_block", ["ALLOC-INV-003"],
            tags=["z3", "pageblock"])
def small_buddies_share_block() -> Outcome:
    """Below pageblock_order a block and its buddy lie in one pageblock (hence have one type),
    the premise of ALLOC-INV-003's claim that such buddies always merge."""
    pfn, pbo, pre = _pageblock()
    order = z3.BitVec("order", 64)
    pre = [*pre, ult(order, pbo), is_aligned(pfn, order)]
    claim = pageblock_align(find_buddy_pfn(pfn, order), pbo) == pageblock_align(pfn, pbo)
    return check_claim([pfn, pbo, order], pre, claim)


@obligation("alloc.pageblock.large_blocks_whole", ["ALLOC-INV-004", "ALLOC-OP-003"],
            tags=["z3", "pageblock"])
def large_blocks_whole() -> Outcome:
    """A block of pageblock order or more starts and ends on pageblock boundaries, so
    ``split_large_buddy`` frees it as whole pageblocks."""
    pfn, pbo, pre = _pageblock()
    order = z3.BitVec("order", 64)
    pre = [*pre, z3.UGE(order, pbo), ult(order, ORDER_LIMIT), is_aligned(pfn, order)]
    claim = z3.And(pageblock_align(pfn, pbo) == pfn,
                   pageblock_align(pfn + (1 << order), pbo) == pfn + (1 << order))
    return check_claim([pfn, pbo, order], pre, claim)


# --- watermarks (ALLOC-POL-010, ALLOC-INV-010, ALLOC-POL-016) ----------------------------------

#: Wide enough that no product of the formulas wraps (HIGH * watermark_boost_factor < 2^73;
#: the watermark inputs use 72 bits, as pages_min * managed < 2^69): on these widths the
#: bit-vectors mean what the ints mean.
W = 76


def _wmark_inputs(managed_limit: int = PFN_LIMIT) -> tuple[list[z3.BitVecRef], list[Any]]:
    mfk, managed, lowmem, wsf = bv("min_free_kbytes managed lowmem_pages "
                                   "watermark_scale_factor", 72)
    pre = [between(mfk, 0, INT_MAX), between(managed, 1, managed_limit - 1),
           between(lowmem, 1, managed_limit - 1), ule(managed, lowmem),
           between(wsf, 1, 3000)]
    return [mfk, managed, lowmem, wsf], pre


def _render_wmarks(v: dict[str, int | bool]) -> str:
    return call("setup_per_zone_wmarks", min_free_kbytes=v["min_free_kbytes"],
                managed=v["managed"], lowmem_pages=v["lowmem_pages"],
                watermark_scale_factor=v["watermark_scale_factor"])


@obligation("alloc.watermark.ordered", ["ALLOC-POL-010", "ALLOC-INV-010"],
            tags=["z3", "watermark"])
def watermarks_ordered() -> Outcome:
    """For every min_free_kbytes and watermark_scale_factor the sysctls accept and every lowmem
    zone below 2^40 pages: 0 <= MIN <= LOW <= HIGH <= PROMO, the three gaps are equal and at
    least MIN/4, and PROMO stays below 2^62. (That MIN is at most min_free_kbytes' share,
    ``pages_min * managed / lowmem <= pages_min``, is beyond the solver's reach on 72-bit
    division in a minute; the tests check it on ints.)"""
    vs, pre = _wmark_inputs()
    mfk, managed, lowmem, wsf = vs
    wmin, low, high, promo = setup_per_zone_wmarks(mfk, managed, lowmem, wsf, Z3)
    delta = low - wmin
    claims = {"ordered": z3.And(ule(wmin, low), ule(low, high), ule(high, promo)),
              "equal gaps": z3.And(high - low == delta, promo - high == delta),
              "gap >= MIN/4": z3.UGE(delta, z3.LShR(wmin, 2)),
              "PROMO < 2^62": ult(promo, 1 << 62)}
    return all_of((label, check_claim(vs, pre, c, _render_wmarks))
                  for label, c in claims.items())


def _u64_product_fits(managed_limit: int) -> Outcome:
    vs, pre = _wmark_inputs(managed_limit)
    mfk, managed = vs[0], vs[1]
    pages_min = z3.LShR(mfk, C.PAGE_SHIFT - 10)
    return check_claim(vs, pre, ult(pages_min * managed, 1 << 64), _render_wmarks,
                       detail=f"managed < 2^{managed_limit.bit_length() - 1} pages")


@obligation("alloc.watermark.u64_product_2e40", ["ALLOC-POL-010"], expected=COUNTEREXAMPLE,
            tags=["z3", "watermark", "edge"])
def wmark_u64_product_2e40() -> Outcome:
    """Edge, expected to fail: the kernel computes ``(u64)pages_min * managed`` in 64 bits.
    With min_free_kbytes up to INT_MAX and a zone of up to 2^40 pages it wraps (the spec's
    Python ints do not): from 2^35 pages (128 TiB) with min_free_kbytes near INT_MAX, or
    2^40 pages with 64 GiB of min_free_kbytes."""
    return _u64_product_fits(PFN_LIMIT)


@obligation("alloc.watermark.u64_product_2e35", ["ALLOC-POL-010"], tags=["z3", "watermark"])
def wmark_u64_product_2e35() -> Outcome:
    """Below 2^35 pages (128 TiB) per zone the product cannot wrap for any accepted
    min_free_kbytes, so the spec's arithmetic is the kernel's."""
    return _u64_product_fits(1 << 35)


@obligation("alloc.watermark.mult_frac", ["ALLOC-POL-010", "ALLOC-POL-016"],
            tags=["z3", "watermark"])
def wmark_mult_frac() -> Outcome:
    """The spec writes ``x * n // 10000`` where the kernel writes ``mult_frac(x, n, 10000)``
    (``q * n + r * n / d`` with q, r the quotient and remainder of x / d, in u64): equal as
    integers (checked on Z3 integers, where the spec's division is exact), and the kernel's
    form does not wrap 64 bits (checked on bit-vectors), for x below 2^42 (managed pages or a
    HIGH watermark) and every n up to INT_MAX (watermark_scale_factor,
    watermark_boost_factor)."""
    d = 10000
    xi, ni = z3.Ints("x n")
    equal = check_claim([xi, ni], [xi >= 0, xi < 1 << 42, ni >= 0, ni <= INT_MAX],
                        (xi / d) * ni + ((xi % d) * ni) / d == Z3.div(xi * ni, d))
    x, n = bv("x n", W)
    q, r = z3.UDiv(x, d), z3.URem(x, d)
    fits = check_claim([x, n], [ult(x, 1 << 42), between(n, 0, INT_MAX)],
                       z3.And(ult(q * n, 1 << 63), ult(r * n, 1 << 63),
                              ult(q * n + z3.UDiv(r * n, d), 1 << 63)))
    return all_of([("equal", equal), ("no u64 wrap", fits)])


@obligation("alloc.watermark.boost_cap", ["ALLOC-POL-016", "ALLOC-INV-010"],
            tags=["z3", "watermark"])
def boost_cap() -> Outcome:
    """A boost step never lowers the boost and never takes it past ``max_boost``, which is 0
    (no boosting) or ``max(pageblock_nr_pages, HIGH * factor / 10000)``; so a boost that
    starts at 0 stays within that cap forever, for every watermark_boost_factor the sysctl
    accepts and every pageblock_order."""
    high, factor, pbo, boost = bv("high watermark_boost_factor pageblock_order boost", W)
    nr = 1 << pbo
    cap = watermark_max_boost(high, factor, nr, Z3)
    new = boosted_watermark(boost, cap, nr, Z3)
    pre = [ult(high, 1 << 42), between(factor, 0, INT_MAX), ule(pbo, MAX_PAGE_ORDER),
           ule(boost, cap)]
    claim = z3.And(ule(boost, new), ule(new, cap),
                   z3.Or(cap == 0, cap == Z3.max(nr, Z3.div(high * factor, 10000))))
    return check_claim([high, factor, pbo, boost], pre, claim)


# --- reserves and the watermark test (ALLOC-POL-012..015) ---------------------------------------

def _flags_mark() -> tuple[z3.BitVecRef, z3.BitVecRef, list[Any]]:
    mark, flags = bv("mark alloc_flags", 48)
    return mark, flags, [ult(mark, 1 << 42), ult(flags, 1 << 12)]


def _render_reserve(v: dict[str, int | bool]) -> str:
    return call("reserve_adjusted_min", mark=v["mark"],
                alloc_flags=v["alloc_flags"]) + f"  # {C.format_alloc_flags(int(v['alloc_flags']))}"


@obligation("alloc.reserve.never_raises", ["ALLOC-POL-013"], tags=["z3", "watermark"])
def reserve_never_raises() -> Outcome:
    """For every combination of ALLOC_* flags the reserve-adjusted minimum lies in 0..mark."""
    mark, flags, pre = _flags_mark()
    wmin = reserve_adjusted_min(mark, flags, Z3)
    return check_claim([mark, flags], pre, z3.And(ule(wmin, mark), wmin >= 0), _render_reserve)


@obligation("alloc.reserve.gfp_atomic_fraction", ["ALLOC-POL-013"], tags=["z3", "watermark"])
def reserve_gfp_atomic() -> Outcome:
    """GFP_ATOMIC (ALLOC_MIN_RESERVE|ALLOC_NON_BLOCK, no ALLOC_OOM) may use 62.5% of the
    reserve: ``m1 = m - m/2`` is ceil(m/2), ``m2 = m1 - m1/4`` lies in [3*m1/4, 3*m1/4 + 3/4],
    so 3*mark <= 8*min <= 3*mark + 9 (worked by hand from __zone_watermark_ok)."""
    mark, flags, pre = _flags_mark()
    pre = [*pre, flags & C.ALLOC_MIN_RESERVE != 0, flags & C.ALLOC_NON_BLOCK != 0,
           flags & C.ALLOC_OOM == 0]
    wmin = reserve_adjusted_min(mark, flags, Z3)
    return check_claim([mark, flags], pre, z3.And(ule(3 * mark, 8 * wmin),
                                                  ule(8 * wmin, 3 * mark + 9)), _render_reserve)


@obligation("alloc.reserve.min_reserve_half", ["ALLOC-POL-013"], tags=["z3", "watermark"])
def reserve_half() -> Outcome:
    """A blocking __GFP_HIGH request (ALLOC_MIN_RESERVE alone) goes to ceil(mark/2); ALLOC_OOM
    alone likewise."""
    mark, flags, pre = _flags_mark()
    reserves = C.ALLOC_MIN_RESERVE | C.ALLOC_NON_BLOCK | C.ALLOC_OOM
    one = z3.Or(flags & reserves == C.ALLOC_MIN_RESERVE, flags & reserves == C.ALLOC_OOM)
    wmin = reserve_adjusted_min(mark, flags, Z3)
    return check_claim([mark, flags], [*pre, one],
                       z3.Or(2 * wmin == mark, 2 * wmin == mark + 1), _render_reserve)


@obligation("alloc.reserve.nonblock_alone_no_reduction", ["ALLOC-POL-013"],
            tags=["z3", "watermark"])
def reserve_nonblock_alone() -> Outcome:
    """Without ALLOC_MIN_RESERVE and ALLOC_OOM (GFP_NOWAIT: ALLOC_NON_BLOCK alone, or
    ALLOC_HIGHATOMIC) the mark is not reduced at all: internal.h's "25%" for ALLOC_NON_BLOCK
    is stale."""
    mark, flags, pre = _flags_mark()
    pre = [*pre, flags & (C.ALLOC_MIN_RESERVE | C.ALLOC_OOM) == 0]
    return check_claim([mark, flags], pre, reserve_adjusted_min(mark, flags, Z3) == mark,
                       _render_reserve)


@obligation("alloc.reserve.monotone", ["ALLOC-POL-013"], tags=["z3", "watermark"])
def reserve_monotone() -> Outcome:
    """More reserve flags never raise the minimum: flags ⊆ flags2 implies
    min(flags2) <= min(flags), for every mark (split by which of ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK and ALLOC_OOM each side has; the other bits stay symbolic)."""
    bits = (C.ALLOC_MIN_RESERVE, C.ALLOC_NON_BLOCK, C.ALLOC_OOM)
    subsets = [sum(b for i, b in enumerate(bits) if k >> i & 1) for k in range(8)]

    def case(a: int, b: int) -> Outcome:
        mark, flags, pre = _flags_mark()
        flags2 = z3.BitVec("alloc_flags2", 48)
        pre = [*pre, flags & ~flags2 == 0, ult(flags2, 1 << 12),
               flags & sum(bits) == a, flags2 & sum(bits) == b]
        claim = ule(reserve_adjusted_min(mark, flags2, Z3), reserve_adjusted_min(mark, flags, Z3))
        return check_claim([mark, flags, flags2], pre, claim)
    return all_of((f"{C.format_alloc_flags(a)} <= {C.format_alloc_flags(b)}", case(a, b))
                  for a in subsets for b in subsets if a & ~b == 0)


@obligation("alloc.unusable.reserves_keep_highatomic", ["ALLOC-POL-012"],
            tags=["z3", "watermark"])
def unusable_highatomic() -> Outcome:
    """Free highatomic pages are unusable exactly for requests without any ALLOC_RESERVES flag,
    free CMA pages exactly for requests without ALLOC_CMA, and ``(1 << order) - 1`` always."""
    order, flags, ha, cma = bv("order alloc_flags nr_free_highatomic nr_free_cma_pages")
    pre = [ule(order, MAX_PAGE_ORDER), ult(flags, 1 << 12), ult(ha, 1 << 40), ult(cma, 1 << 40)]
    u = zone_watermark_unusable_free(order, flags, ha, cma, Z3)
    want = ((1 << order) - 1 + z3.If(flags & C.ALLOC_RESERVES == 0, ha, 0)
            + z3.If(flags & C.ALLOC_CMA == 0, cma, 0))
    return check_claim([order, flags, ha, cma], pre, u == want)


def _count_inputs() -> tuple[list[z3.BitVecRef], list[Any]]:
    vs = bv("free_pages reserved mark lowmem_reserve")
    return vs, [ult(v, 1 << 45) for v in vs]


@obligation("alloc.watermark.negative_difference_fails", ["ALLOC-POL-014"],
            tags=["z3", "watermark"])
def negative_difference_fails() -> Outcome:
    """``__zone_watermark_ok`` compares signed longs: when the unusable pages exceed the free
    ones the test fails for every non-negative mark and lowmem reserve."""
    (free, unusable, wmin, lr), pre = _count_inputs()
    pre = [*pre, ult(free, unusable)]
    return check_claim([free, unusable, wmin, lr], pre,
                       z3.Not(watermark_free_ok(free, unusable, wmin, lr)))


def _render_fast(v: dict[str, int | bool]) -> str:
    return call("watermark_fast_order0_ok", free_pages=v["free_pages"], reserved=v["reserved"],
                mark=v["mark"], lowmem_reserve=v["lowmem_reserve"])


@obligation("alloc.watermark.fast_order0_sound", ["ALLOC-POL-015"], tags=["z3", "watermark"])
def fast_order0_sound() -> Outcome:
    """The order-0 shortcut of ``zone_watermark_fast`` (after the 2022 fix) passes only when
    free - reserved really exceeds mark + lowmem_reserve, and then the full test's count
    check passes too: the shortcut never lets a request below the watermark."""
    (free, reserved, mark, lr), pre = _count_inputs()
    ok = watermark_fast_order0_ok(free, reserved, mark, lr, Z3)
    claim = z3.Implies(ok, z3.And(free - reserved > mark + lr,
                                  watermark_free_ok(free, reserved, mark, lr)))
    return check_claim([free, reserved, mark, lr], pre, claim, _render_fast)


def zone_watermark_fast_order0_pre_2022(free_pages: Any, reserved: Any, mark: Any,
                                        lowmem_reserve: Any) -> Any:
    """The order-0 shortcut before "page_alloc: fix invalid watermark check on a negative
    value" (J. Kim, 2022), in C's types on 64-bit bit-vectors::

        long fast_free = free_pages;
        fast_free -= __zone_watermark_unusable_free(z, 0, alloc_flags);
        if (fast_free > mark + z->lowmem_reserve[highest_zoneidx])   /* unsigned long */

    ``mark`` is unsigned long, so the comparison converts a negative ``fast_free`` to a huge
    unsigned value. Not spec code: the spec models 6.15+, which has the fix.
    """
    fast_free = free_pages - reserved
    return z3.UGT(fast_free, mark + lowmem_reserve)


@obligation("alloc.watermark.fast_order0_pre_2022", ["ALLOC-POL-015"],
            expected=COUNTEREXAMPLE, tags=["z3", "watermark", "edge"])
def fast_order0_pre_2022() -> Outcome:
    """Edge, expected to fail: the same soundness claim for the shortcut as it was before the
    2022 fix. When the unusable (then: reserved highatomic) pages exceed the free pages the
    difference is negative and passes the unsigned comparison, so order-0 requests drain the
    zone below its minimum without reclaim."""
    (free, reserved, mark, lr), pre = _count_inputs()
    ok = zone_watermark_fast_order0_pre_2022(free, reserved, mark, lr)

    def render(v: dict[str, int | bool]) -> str:
        return (f"# pre-2022 C: (unsigned long)({v['free_pages']} - {v['reserved']}) > "
                f"{v['mark']} + {v['lowmem_reserve']} is true; the spec (6.15+) says:\n"
                + _render_fast(v) + "  # False")
    return check_claim([free, reserved, mark, lr], pre,
                       z3.Implies(ok, free - reserved > mark + lr), render)


# --- fallback claims (ALLOC-POL-030, ALLOC-POL-031) ---------------------------------------------

def _claim_inputs() -> tuple[list[z3.BitVecRef], list[Any]]:
    free, alike, pbo = bv("free_pages alike_pages pageblock_order", 32)
    return [free, alike, pbo], [between(pbo, 1, MAX_PAGE_ORDER), ule(free, 1 << pbo),
                                ule(alike, 1 << pbo)]


@obligation("alloc.claim.half_pageblock", ["ALLOC-POL-031"], tags=["z3", "fallback"])
def claim_half_pageblock() -> Outcome:
    """With mobility grouping on, a block is claimed exactly when free and alike pages make
    up at least half of it: 2 * (free + alike) >= pageblock_nr_pages."""
    (free, alike, pbo), pre = _claim_inputs()
    met = claim_threshold_met(free, alike, pbo, False, Z3)
    return check_claim([free, alike, pbo], pre, met == (2 * (free + alike) >= (1 << pbo)))


@obligation("alloc.claim.movable_block_census", ["ALLOC-POL-031", "ALLOC-OP-010"],
            tags=["z3", "fallback"])
def claim_movable_census() -> Outcome:
    """An UNMOVABLE or RECLAIMABLE request takes over a MOVABLE block exactly when at most half
    of the block holds movable pages: its alike pages are ``nr - (free + movable)``, so the
    threshold reads ``nr - movable >= nr/2`` (hand-derived from try_to_claim_block)."""
    free, movable, pbo = bv("free_pages movable_pages pageblock_order", 32)
    nr = 1 << pbo
    pre = [between(pbo, 1, MAX_PAGE_ORDER), ule(free + movable, nr), ule(free, nr),
           ule(movable, nr)]
    alike = nr - (free + movable)  # try_to_claim_block, block_type == MIGRATE_MOVABLE
    met = claim_threshold_met(free, alike, pbo, False, Z3)
    return check_claim([free, movable, pbo], pre, met == (2 * movable <= nr))


@obligation("alloc.claim.should_try", ["ALLOC-POL-030"], tags=["z3", "fallback"])
def claim_should_try() -> Outcome:
    """Claiming is tried for every UNMOVABLE and RECLAIMABLE request, and for a MOVABLE one
    exactly when the candidate's order is at least pageblock_order / 2."""
    order, pbo, mt = bv("order pageblock_order start_mt", 32)
    pre = [ule(pbo, MAX_PAGE_ORDER), ule(order, MAX_PAGE_ORDER), ule(mt, 2)]
    tried = should_try_claim_block(order, mt, pbo, False, Z3)
    want = z3.Or(mt != C.MIGRATE_MOVABLE, z3.UGE(order, z3.UDiv(pbo, 2)))
    return check_claim([order, pbo, mt], pre, tried == want)


# --- the highatomic reserve (ALLOC-OP-014, ALLOC-INV-009) ---------------------------------------

@obligation("alloc.highatomic.bound_aligned", ["ALLOC-INV-009", "ALLOC-OP-014"],
            tags=["z3", "highatomic"])
def highatomic_bound() -> Outcome:
    """``ALIGN(managed / 100, pageblock_nr_pages)`` is a whole number of pageblocks, at least
    1% of the zone, and less than 1% plus a pageblock: never above the pre-6.8 bound
    ``managed/100 + pageblock_nr_pages``."""
    managed, pbo = bv("managed pageblock_order", 48)
    nr = 1 << pbo
    pre = [ult(managed, PFN_LIMIT), ule(pbo, MAX_PAGE_ORDER)]
    m = highatomic_max(managed, nr, Z3)
    share = z3.UDiv(managed, 100)
    claim = z3.And(z3.URem(m, nr) == 0, ule(share, m), ult(m, share + nr))
    return check_claim([managed, pbo], pre, claim)


@obligation("alloc.highatomic.reserve_step", ["ALLOC-OP-014", "ALLOC-INV-009"],
            tags=["z3", "highatomic"])
def highatomic_step() -> Outcome:
    """From a reserve that is a whole number of pageblocks and below the bound, reserving one
    more pageblock stays within the bound, and reserving a block of order k >= pageblock_order
    overshoots it by less than ``1 << k`` (ALLOC-INV-009's allowance)."""
    managed, pbo, reserved, order = bv("managed pageblock_order nr_reserved_highatomic order",
                                       48)
    nr = 1 << pbo
    bound = highatomic_max(managed, nr, Z3)
    pre = [ult(managed, PFN_LIMIT), ule(pbo, MAX_PAGE_ORDER), z3.URem(reserved, nr) == 0,
           ult(reserved, bound), z3.UGE(order, pbo), ule(order, MAX_PAGE_ORDER)]
    claim = z3.And(ule(reserved + nr, bound), ult(reserved + (1 << order), bound + (1 << order)))
    return check_claim([managed, pbo, reserved, order], pre, claim)


# --- per-CPU bounds (ALLOC-POL-011, ALLOC-POL-042, ALLOC-INV-007) -------------------------------

@obligation("alloc.pcp.batch_high_bounds", ["ALLOC-POL-011", "ALLOC-INV-007"],
            tags=["z3", "pcp"])
def pcp_bounds() -> Outcome:
    """``zone_batchsize``/``zone_highsize``: for every zone below 2^40 pages, low watermark,
    CPU count up to 8192 and percpu_pagelist_high_fraction the sysctl accepts (0 or 8..INT_MAX):
    batch is 2^k - 1 with 1 <= batch <= 63, and high_min, high_max >= 4 * batch."""
    managed, low, cpus, fraction = bv("managed low_wmark nr_cpus percpu_pagelist_high_fraction",
                                      48)
    pre = [between(managed, 1, PFN_LIMIT - 1), ult(low, 1 << 42), between(cpus, 1, 8192),
           z3.Or(fraction == 0, between(fraction, 8, INT_MAX))]
    batch, high_min, high_max = pcp_batch_high(managed, low, cpus, fraction, Z3)
    claim = z3.And(between(batch, 1, 63), batch & (batch + 1) == 0,
                   z3.UGE(high_min, 4 * batch), z3.UGE(high_max, 4 * batch))
    return check_claim([managed, low, cpus, fraction], pre, claim)


def _pcp_free_inputs() -> tuple[list[Any], list[Any]]:
    count, free_count, batch, high = bv("count free_count batch high", 32)
    free_high = z3.Bool("free_high")
    pre = [between(batch, 1, 63), ult(high, 1 << 24), ult(count, 1 << 24),
           ult(free_count, 1 << 16)]
    return [count, free_count, batch, high, free_high], pre


def _render_pcp_free(v: dict[str, int | bool]) -> str:
    return ("pcp = PerCpuPages((), count={count}, high=0, high_min=0, high_max=0, "
            "batch={batch}, free_count={free_count})\n".format(**v)
            + call("nr_pcp_free", pcp=0, batch=v["batch"], high=v["high"],
                   free_high=v["free_high"]).replace("pcp=0", "pcp"))


@obligation("alloc.pcp.free_keeps_batch", ["ALLOC-POL-042", "ALLOC-INV-007"],
            tags=["z3", "pcp"])
def pcp_free_bounds() -> Outcome:
    """With ``high >= 2 * batch`` (ALLOC-INV-007 gives ``high >= 4 * batch``) a drain frees
    between ``batch`` and ``high - batch`` pages, leaving at least a batch; after a high-order
    burst it frees at most ``count`` and at most ``batch << PCP_BATCH_SCALE_MAX``."""
    (count, fc, batch, high, fh), pre = _pcp_free_inputs()
    n = nr_pcp_free_pages(count, fc, batch, high, fh, Z3)
    claim = z3.If(fh, z3.And(ule(n, count), ule(n, batch << C.PCP_BATCH_SCALE_MAX)),
                  z3.Implies(z3.UGE(high, 2 * batch), z3.And(z3.UGE(n, batch),
                                                             ule(n, high - batch))))
    return check_claim([count, fc, batch, high, fh], pre, claim, _render_pcp_free)


@obligation("alloc.pcp.free_at_least_one", ["ALLOC-POL-042"], expected=COUNTEREXAMPLE,
            tags=["z3", "pcp", "edge"])
def pcp_free_at_least_one() -> Outcome:
    """Edge, expected to fail: "a drain outside a burst frees at least one page" does not hold
    for every ``high >= batch``: at ``high == batch`` the clamp's upper end ``high - batch`` is
    0. Only ALLOC-INV-007 (``high >= high_min >= 4 * batch``) keeps the kernel away from it."""
    (count, fc, batch, high, fh), pre = _pcp_free_inputs()
    pre = [*pre, z3.Not(fh), z3.UGE(high, batch)]
    n = nr_pcp_free_pages(count, fc, batch, high, fh, Z3)
    return check_claim([count, fc, batch, high, fh], pre, z3.UGE(n, 1), _render_pcp_free)


# --- GFP (ALLOC-POL-005) ------------------------------------------------------------------------

@obligation("alloc.gfp.migratetype_pcp", ["ALLOC-POL-005"], tags=["z3", "gfp"])
def gfp_migratetype_pcp() -> Outcome:
    """Every GFP mask without both __GFP_MOVABLE and __GFP_RECLAIMABLE maps to a pcp
    migratetype (0, 1 or 2)."""
    gfp = z3.BitVec("gfp", 32)
    both = C.__GFP_MOVABLE | C.__GFP_RECLAIMABLE
    return check_claim([gfp], [gfp & both != both],
                       ult(C.gfp_migratetype(gfp), C.MIGRATE_PCPTYPES))


@obligation("alloc.gfp.migratetype_any_mask", ["ALLOC-POL-005"], expected=COUNTEREXAMPLE,
            tags=["z3", "gfp", "edge"])
def gfp_migratetype_any() -> Outcome:
    """Edge, expected to fail: for *every* mask, ``gfp_migratetype`` is a pcp type. A mask with
    both mobility bits yields 3, MIGRATE_HIGHATOMIC (the kernel only warns, under
    CONFIG_DEBUG_VM)."""
    gfp = z3.BitVec("gfp", 32)

    def render(v: dict[str, int | bool]) -> str:
        return f"gfp_migratetype(Gfp({C.format_gfp(int(v['gfp']))!r}))  # == MIGRATE_HIGHATOMIC"
    return check_claim([gfp], [], ult(C.gfp_migratetype(gfp), C.MIGRATE_PCPTYPES), render)


@obligation("alloc.watermark.nonvacuous_pass", ["ALLOC-POL-014", "ALLOC-POL-015"],
            tags=["z3", "watermark", "nonvacuity"])
def watermark_nonvacuous() -> Outcome:
    """Non-vacuity of the watermark obligations: a GFP_ATOMIC request passes a watermark a
    plain request fails, with highatomic pages free (the reserves really matter)."""
    (free, _, mark, lr), pre = _count_inputs()
    ha = z3.BitVec("nr_free_highatomic", 64)
    atomic = C.ALLOC_MIN_RESERVE | C.ALLOC_NON_BLOCK | C.ALLOC_KSWAPD

    def passes(flags: int) -> Any:
        u = zone_watermark_unusable_free(0, flags, ha, 0, Z3)
        return watermark_free_ok(free, u, reserve_adjusted_min(mark, flags, Z3), lr)
    return find_witness([free, mark, lr, ha], [*pre, ult(ha, 1 << 20), ha > 0,
                                               passes(atomic), z3.Not(passes(0))])


# --- slow-path flags (ALLOC-POL-006), over every combination of the bits they read -------------

_GFP_READ = (C.__GFP_HIGH, C.__GFP_DIRECT_RECLAIM, C.__GFP_KSWAPD_RECLAIM, C.__GFP_NOMEMALLOC,
             C.__GFP_MOVABLE, C.__GFP_RECLAIMABLE)


def _gfp_cases() -> list[tuple[int, int, int, str, bool]]:
    out = []
    for k in range(1 << len(_GFP_READ)):
        gfp = sum(b for i, b in enumerate(_GFP_READ) if k >> i & 1)
        for order, defrag, variant, rt in itertools.product((0, 1, 9), (0, 1),
                                                            ("v6.15", "v6.18"), (False, True)):
            out.append((gfp, order, defrag, variant, rt))
    return out


def _gfp_call(gfp: int, order: int, defrag: int, variant: str, rt: bool) -> str:
    return (f"gfp_to_alloc_flags(Gfp({C.format_gfp(gfp)!r}), {order}, {defrag}, {variant!r}, "
            f"rt_task={rt})")


@obligation("alloc.gfp.highatomic_needs_high", ["ALLOC-POL-006"], tags=["finite", "gfp"])
def gfp_highatomic() -> Outcome:
    """For every combination of the GFP bits gfp_to_alloc_flags reads, every order class,
    defrag_mode, variant and real-time flag: ALLOC_HIGHATOMIC comes only with order > 0, a
    request that cannot reclaim directly and has no __GFP_NOMEMALLOC, and in v6.18 only with
    __GFP_HIGH; ALLOC_CPUSET is dropped exactly for non-blocking ALLOC_MIN_RESERVE requests;
    defrag_mode always adds ALLOC_NOFRAGMENT."""
    cases = _gfp_cases()
    for gfp, order, defrag, variant, rt in cases:
        f = C.gfp_to_alloc_flags(gfp, order, defrag, variant, rt)
        blocking = bool(gfp & C.__GFP_DIRECT_RECLAIM)
        ha_ok = (order > 0 and not blocking and not gfp & C.__GFP_NOMEMALLOC
                 and (variant == "v6.15" or bool(gfp & C.__GFP_HIGH)))
        cpuset_dropped = not blocking and bool(f & C.ALLOC_MIN_RESERVE)
        ok = ((not f & C.ALLOC_HIGHATOMIC or ha_ok)
              and (not f & C.ALLOC_CPUSET) == cpuset_dropped
              and (not defrag or bool(f & C.ALLOC_NOFRAGMENT)))
        if not ok:
            return Outcome(COUNTEREXAMPLE, C.format_alloc_flags(f),
                           counterexample=_gfp_call(gfp, order, defrag, variant, rt))
    return Outcome(PROVED, f"{len(cases)} cases")


@obligation("alloc.gfp.variants_differ_only_on_highatomic", ["ALLOC-POL-006"],
            tags=["finite", "gfp", "variant"])
def gfp_variant_diff() -> Outcome:
    """v6.15 and v6.18 differ in gfp_to_alloc_flags exactly on high-order requests that cannot
    reclaim directly, have no __GFP_NOMEMALLOC and no __GFP_HIGH (GFP_NOWAIT-like), and there
    only by ALLOC_HIGHATOMIC: "only set ALLOC_HIGHATOMIC for __GFP_HIGH allocations"."""
    n = 0
    for gfp, order, defrag, variant, rt in _gfp_cases():
        if variant != "v6.18":
            continue
        n += 1
        new = C.gfp_to_alloc_flags(gfp, order, defrag, "v6.18", rt)
        old = C.gfp_to_alloc_flags(gfp, order, defrag, "v6.15", rt)
        differs = (order > 0 and not gfp & (C.__GFP_DIRECT_RECLAIM | C.__GFP_NOMEMALLOC
                                            | C.__GFP_HIGH))
        if (old != new) != differs or (differs and old ^ new != C.ALLOC_HIGHATOMIC):
            return Outcome(COUNTEREXAMPLE, "variants differ elsewhere",
                           counterexample=_gfp_call(gfp, order, defrag, "v6.15", rt))
    return Outcome(PROVED, f"{n} cases")
