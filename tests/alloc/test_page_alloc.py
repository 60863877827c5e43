"""Scenario tests of the ALLOC core spec; every expected value is derived by hand from the
kernel code cited in the rule, not read back from the spec."""

from __future__ import annotations

import pytest

import spec
import spec.constants as C
from spec.buddy import add_to_free_list, del_page_from_free_list, free_one_page_locked
from spec.fallback import claim_threshold_met, rmqueue_steal, should_try_claim_block
from spec.invariants import check_invariants
from spec.zone import SpecError, Work, ZoneConfig

M, U, R = C.MIGRATE_MOVABLE, C.MIGRATE_UNMOVABLE, C.MIGRATE_RECLAIMABLE

TINY = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=2, nr_cpus=1,
                  min_free_kbytes=0, thp=False, watermark_boost_factor=0,
                  zone_is_normal_with_dma32=False)


def test_boot_layout_ALLOC_OP_030() -> None:
    z = spec.init_zone(TINY)
    assert z.free_area[3][M] == (0, 8, 16, 24)  # tail insertion in pfn order
    assert z.nr_free == (0, 0, 0, 4)
    assert z.nr_free_pages == 32 and z.nr_free_pages_blocks == 32
    assert z.pageblock_migratetype == (M,) * 8
    assert check_invariants(z) == []


def test_boot_keeps_highatomic_and_cma_blocks_ALLOC_OP_030() -> None:
    cfg = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=2, min_free_kbytes=0,
                     pageblock_types=(C.MIGRATE_HIGHATOMIC, M, M, M, C.MIGRATE_CMA, M, M, M))
    z = spec.init_zone(cfg)
    # HIGHATOMIC and CMA never merge across pageblocks (ALLOC-OP-002).
    assert z.free_area[2][C.MIGRATE_HIGHATOMIC] == (0,)
    assert z.free_area[2][C.MIGRATE_CMA] == (16,)
    assert z.nr_free_highatomic == 4 and z.nr_free_cma_pages == 4
    assert z.nr_reserved_highatomic == 4
    assert check_invariants(z) == []


def test_unmovable_request_claims_whole_free_block_ALLOC_OP_010_ALLOC_OP_011() -> None:
    z, pfn = spec.alloc_pages(spec.init_zone(TINY), C.GFP_KERNEL, 0)
    # __rmqueue_claim scans from MAX_PAGE_ORDER: the head of the order-3 MOVABLE list (pfn 0)
    # is >= pageblock_order, so both its pageblocks become UNMOVABLE and it is split on the
    # UNMOVABLE lists (expand puts upper halves at the head), then the pcp refill of batch 1
    # hands out pfn 0.
    assert pfn == 0
    assert z.pageblock_migratetype == (U, U, M, M, M, M, M, M)
    assert z.free_area[2][U] == (4,) and z.free_area[1][U] == (2,) and z.free_area[0][U] == (1,)
    assert z.free_area[3][M] == (8, 16, 24)
    assert z.nr_free_pages == 31
    assert z.nr_free_pages_blocks == 28  # three order-3 blocks and the order-2 block at 4
    assert z.allocated == frozenset({spec.Allocation(0, 0, U)})
    assert check_invariants(z) == []


def test_free_goes_to_pcp_head_then_drains_from_tail_ALLOC_OP_023_ALLOC_OP_022() -> None:
    z = spec.init_zone(TINY)
    pages = []
    for _ in range(3):
        z, p = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
        pages.append(p)
    assert pages == [0, 1, 2]
    pindex = TINY.order_to_pindex(M, 0)
    # high_min = high_max = 4 (batch 1, bounds floored at batch * 4): freeing 3 pages keeps
    # them, each on the list head.
    for p in pages:
        z, _ = spec.free_pages(z, p, 0)
    assert z.pcp[0].lists[pindex] == (2, 1, 0)
    assert z.pcp[0].count == 3
    z, _ = spec.drain_pages(z, 0)
    assert z.pcp[0].count == 0
    assert 0 in z.free_area[3][M]  # everything merged back into the order-3 block at 0
    assert z.nr_free_pages == 32
    assert check_invariants(z) == []


def test_merge_and_tail_insertion_ALLOC_OP_002() -> None:
    cfg = ZoneConfig(nr_pageblocks=8, max_page_order=7, pageblock_order=5, thp=False,
                     min_free_kbytes=0)
    w = Work(spec.init_zone(cfg))
    for pfn in (0, 128):
        del_page_from_free_list(w, pfn, 7, M)
    free_one_page_locked(w, 32, 5, M)   # higher buddy 64 (order 6) not free: head
    free_one_page_locked(w, 64, 6, M)   # order 6 >= MAX_PAGE_ORDER - 1: head
    free_one_page_locked(w, 208, 4, M)  # parent 192's order-5 buddy 224 not free: head
    free_one_page_locked(w, 16, 4, M)   # parent 0's order-5 buddy 32 is free: tail
    free_one_page_locked(w, 144, 4, M)  # parent 128's order-5 buddy 160 not free: head
    assert w.free_area[4][M] == [144, 208, 16]
    free_one_page_locked(w, 0, 4, M)    # merges 0+16 -> order 5, +32 -> order 6, +64 -> 7
    assert w.buddy[0] == (7, M)
    assert 16 not in w.buddy and 32 not in w.buddy and 64 not in w.buddy


def test_hygiene_refuses_wrong_list_ALLOC_OP_001() -> None:
    w = Work(spec.init_zone(TINY))
    del_page_from_free_list(w, 0, 3, M)
    with pytest.raises(SpecError, match="passed migratetype"):
        add_to_free_list(w, 0, 3, U, tail=False)


@pytest.mark.parametrize("order,mt,want", [
    (9, M, True), (8, M, True), (4, M, True), (3, M, False), (0, M, False),
    (0, U, True), (0, R, True), (3, U, True)])
def test_should_try_claim_block_ALLOC_POL_030(order: int, mt: int, want: bool) -> None:
    assert should_try_claim_block(order, mt, pageblock_order=9) is want


def test_claim_threshold_is_half_a_pageblock_ALLOC_POL_031() -> None:
    assert claim_threshold_met(200, 56, 9)        # 256 = 1 << 8
    assert not claim_threshold_met(200, 55, 9)
    assert claim_threshold_met(0, 0, 9, page_group_by_mobility_disabled=True)


def test_steal_takes_smallest_and_keeps_block_type_ALLOC_OP_012() -> None:
    cfg = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=3, thp=False,
                     min_free_kbytes=0, pageblock_types=(U, U, U, U, U, U, U, U))
    w = Work(spec.init_zone(cfg))
    # All of the zone is UNMOVABLE and free at order 3; a MOVABLE order-0 request that may
    # not claim steals from the smallest order with a fallback: order 3 is the only one.
    pfn = rmqueue_steal(w, 0, M)
    assert pfn == 0
    assert w.pageblock_migratetype[0] == U  # polluted, not claimed
    assert w.free_area[2][U][0] == 4 and w.free_area[1][U][0] == 2 and w.free_area[0][U] == [1]


def test_defrag_mode_never_steals_ALLOC_OP_013_ALLOC_PROP_001() -> None:
    cfg = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=3, thp=False,
                     min_free_kbytes=0, pageblock_types=(U,) * 8, defrag_mode=1)
    z = spec.init_zone(cfg)
    # Every block is whole and free, so NOFRAGMENT may claim one (>= pageblock_order).
    z2, pfn = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
    assert pfn is not None and z2.get_pfnblock_migratetype(pfn) == M
    # With no whole free pageblock left, a MOVABLE request under defrag_mode fails rather
    # than steal (the modelled path ends before the final fallback of the slow path).
    w = Work(z)
    for b in range(8):
        del_page_from_free_list(w, b * 8, 3, U)
        free_one_page_locked(w, b * 8 + 1, 0, U)  # one free page per block, nothing whole
    z3 = w.freeze()
    assert spec.alloc_pages(z3, C.GFP_HIGHUSER_MOVABLE, 0)[1] is None
    # Without defrag_mode the same request steals a page (pollution).
    z4, _ = spec.set_knob(z3, "defrag_mode", 0)
    z5, pfn = spec.alloc_pages(z4, C.GFP_HIGHUSER_MOVABLE, 0)
    assert pfn is not None and z5.get_pfnblock_migratetype(pfn) == U


@pytest.mark.parametrize("gfp,order,variant,want", [
    (C.GFP_ATOMIC, 0, "v6.18",
     C.ALLOC_WMARK_MIN | C.ALLOC_MIN_RESERVE | C.ALLOC_KSWAPD | C.ALLOC_NON_BLOCK),
    (C.GFP_ATOMIC, 1, "v6.18", C.ALLOC_WMARK_MIN | C.ALLOC_MIN_RESERVE | C.ALLOC_KSWAPD
     | C.ALLOC_NON_BLOCK | C.ALLOC_HIGHATOMIC),
    (C.GFP_NOWAIT, 1, "v6.18", C.ALLOC_WMARK_MIN | C.ALLOC_CPUSET | C.ALLOC_KSWAPD
     | C.ALLOC_NON_BLOCK),
    # Before "only set ALLOC_HIGHATOMIC for __GFP_HIGH allocations" (6.18), GFP_NOWAIT
    # high-order requests reserved highatomic blocks.
    (C.GFP_NOWAIT, 1, "v6.15", C.ALLOC_WMARK_MIN | C.ALLOC_CPUSET | C.ALLOC_KSWAPD
     | C.ALLOC_NON_BLOCK | C.ALLOC_HIGHATOMIC),
    (C.GFP_KERNEL, 3, "v6.18", C.ALLOC_WMARK_MIN | C.ALLOC_CPUSET | C.ALLOC_KSWAPD),
    (C.GFP_HIGHUSER_MOVABLE, 0, "v6.18",
     C.ALLOC_WMARK_MIN | C.ALLOC_CPUSET | C.ALLOC_KSWAPD | C.ALLOC_CMA),
    (C.GFP_TRANSHUGE_LIGHT, 9, "v6.18", C.ALLOC_WMARK_MIN | C.ALLOC_CPUSET | C.ALLOC_CMA),
])
def test_gfp_to_alloc_flags_ALLOC_POL_006(gfp: int, order: int, variant: str,
                                          want: int) -> None:
    assert C.gfp_to_alloc_flags(gfp, order, 0, variant) == want
    assert C.gfp_to_alloc_flags(gfp, order, 1, variant) == want | C.ALLOC_NOFRAGMENT


def test_gfp_migratetype_ALLOC_POL_005() -> None:
    assert C.gfp_migratetype(C.GFP_HIGHUSER_MOVABLE) == M
    assert C.gfp_migratetype(C.GFP_KERNEL | C.__GFP_RECLAIMABLE) == R
    assert C.gfp_migratetype(C.GFP_ATOMIC) == U
    assert C.gfp_migratetype(C.GFP_HIGHUSER_MOVABLE, True) == U


def test_atomic_high_order_reserves_highatomic_block_ALLOC_OP_014() -> None:
    # 1% of 51200 pages is 512 >= one pageblock of 512 pages: a reserve is allowed.
    cfg = ZoneConfig(nr_pageblocks=100, thp=False)
    z = spec.init_zone(cfg)
    flags = C.gfp_to_alloc_flags(C.GFP_ATOMIC, 4)
    z, pfn = spec.get_page_from_freelist(z, C.GFP_ATOMIC, 4, flags)
    assert pfn is not None
    assert z.get_pfnblock_migratetype(pfn) == C.MIGRATE_HIGHATOMIC
    assert z.nr_reserved_highatomic == 512
    assert z.nr_free_highatomic == 512 - 16
    # The bound ALIGN(512, 512) = 512 is reached: a second atomic request reserves nothing.
    z, pfn2 = spec.get_page_from_freelist(z, C.GFP_ATOMIC, 4, flags)
    assert pfn2 is not None and z.nr_reserved_highatomic == 512
    z, ok = spec.unreserve_highatomic_pageblock(z, U, force=True)
    assert ok and z.nr_reserved_highatomic == 0
    assert check_invariants(z) == []


def test_alloc_rejects_order_above_max_and_free_checks_ownership_ALLOC_OP_033_034() -> None:
    z = spec.init_zone(TINY)
    assert spec.alloc_pages(z, C.GFP_KERNEL, 4)[1] is None
    with pytest.raises(SpecError):
        spec.free_pages(z, 0, 0)
    z, p = spec.alloc_pages(z, C.GFP_KERNEL, 1)
    with pytest.raises(SpecError):
        spec.free_pages(z, p, 0)


def test_isolation_hides_free_pages_ALLOC_OP_036_ALLOC_OP_037() -> None:
    z = spec.init_zone(TINY)
    z, ok = spec.isolate_pageblock(z, 1)
    assert ok
    # Block 1 lay inside the order-3 buddy at 0: it is split pageblock by pageblock, and the
    # isolated half no longer counts as free.
    assert z.free_area[2][C.MIGRATE_ISOLATE] == (4,)
    assert z.nr_free_pages == 28 and z.nr_free_pages_blocks == 28
    assert spec.isolate_pageblock(z, 1)[1] is False
    z, ok = spec.unisolate_pageblock(z, 1)
    assert ok and z.nr_free_pages == 32
    assert 0 in z.free_area[3][M]  # put back to the tail and merged again
    assert check_invariants(z) == []
