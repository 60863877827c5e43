"""Hand-derived checks of the ALLOC rules not covered elsewhere by name. Every expected value
comes from the kernel code the rule cites, worked through by hand in the comments."""

from __future__ import annotations

import attrs
import z3

import spec
import spec.constants as C
from spec.buddy import combined_pfn, find_buddy_pfn, move_freepages_block
from spec.pcp import nr_pcp_alloc, nr_pcp_free, nr_pcp_high
from spec.watermark import (
    boost_watermark,
    zone_watermark_fast,
    zone_watermark_ok,
    zone_watermark_unusable_free,
)
from spec.zone import ZONE_BELOW_HIGH, ZONE_BOOSTED_WATERMARK, Work, ZoneConfig

U, M, HA, ISO = (C.MIGRATE_UNMOVABLE, C.MIGRATE_MOVABLE, C.MIGRATE_HIGHATOMIC,
                 C.MIGRATE_ISOLATE)
TINY = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=2, nr_cpus=1,
                  min_free_kbytes=0, thp=False, watermark_boost_factor=0)


def test_buddy_arithmetic_ALLOC_POL_020() -> None:
    assert find_buddy_pfn(8, 3) == 0 and find_buddy_pfn(0, 3) == 8
    assert find_buddy_pfn(12, 2) == 8 and combined_pfn(12, 8) == 8
    # The same code on Z3 bit-vectors: the buddy's buddy is the block itself, and both lie
    # in the parent block, for every aligned pfn below 2^40 and every order up to 10.
    pfn, order = z3.BitVecs("pfn order", 64)
    b = find_buddy_pfn(pfn, order)
    s = z3.Solver()
    s.add(z3.ULT(pfn, 1 << 40), z3.ULE(order, 10), pfn & ((1 << order) - 1) == 0)
    s.add(z3.Or(find_buddy_pfn(b, order) != pfn,
                combined_pfn(pfn, b) != pfn & ~(1 << order)))
    assert s.check() == z3.unsat


def test_alloc_flags_nofragment_ALLOC_POL_007() -> None:
    assert C.alloc_flags_nofragment(C.GFP_KERNEL, 0, False) == C.ALLOC_KSWAPD
    assert C.alloc_flags_nofragment(C.GFP_KERNEL, 0, True) == C.ALLOC_KSWAPD | C.ALLOC_NOFRAGMENT
    assert C.alloc_flags_nofragment(C.GFP_TRANSHUGE_LIGHT, 1, False) == C.ALLOC_NOFRAGMENT


def test_unusable_free_ALLOC_POL_012() -> None:
    # (1 << 3) - 1 = 7, plus free highatomic (10) and free CMA (5) for a plain request.
    assert zone_watermark_unusable_free(3, 0, 10, 5) == 22
    assert zone_watermark_unusable_free(3, C.ALLOC_CMA, 10, 5) == 17
    assert zone_watermark_unusable_free(3, C.ALLOC_NON_BLOCK, 10, 5) == 12


def test_watermark_tests_ALLOC_POL_014_ALLOC_POL_015() -> None:
    w = Work(spec.init_zone(TINY))  # 32 free pages, every watermark 0
    assert zone_watermark_ok(w, 0, 31, 0, 32) and not zone_watermark_ok(w, 0, 32, 0, 32)
    assert zone_watermark_ok(w, 3, 0, 0, 32)       # an order-3 MOVABLE block is free
    # More highatomic pages than free ones: the difference is negative, which must fail
    # (the 2022 fix), while a reserve user does not subtract them.
    w.nr_free_highatomic = 40
    assert not zone_watermark_fast(w, 0, 0, 0)
    assert zone_watermark_fast(w, 0, 0, C.ALLOC_NON_BLOCK)
    w.nr_free_highatomic = 0
    # Boosted min mark 100: an order-0 __GFP_HIGH request at WMARK_MIN retries unboosted.
    w.watermark_boost = 100
    flags = C.ALLOC_MIN_RESERVE | C.ALLOC_WMARK_MIN
    assert zone_watermark_fast(w, 0, w.wmark_pages(C.WMARK_MIN), flags)
    assert not zone_watermark_fast(w, 0, w.wmark_pages(C.WMARK_MIN), C.ALLOC_WMARK_MIN)


def test_boost_watermark_ALLOC_POL_016() -> None:
    cfg = attrs.evolve(TINY, min_free_kbytes=64, watermark_boost_factor=15000)
    w = Work(spec.init_zone(cfg))
    # pages_min = 64 >> 2 = 16, delta = max(16 >> 2, 32 * 10 / 10000) = 4: high = 24;
    # max_boost = 24 * 15000 / 10000 = 36; each boost adds one pageblock (4 pages).
    assert tuple(w.watermark) == (16, 20, 24, 28)
    for _ in range(9):
        assert boost_watermark(w)
    assert w.watermark_boost == 36
    assert boost_watermark(w) and w.watermark_boost == 36
    w.config = attrs.evolve(cfg, watermark_boost_factor=0)
    assert not boost_watermark(w)


def test_pcp_refill_batches_ALLOC_OP_020_ALLOC_OP_021_ALLOC_POL_040_ALLOC_OP_004_ALLOC_OP_005(
        ) -> None:
    # 32 pageblocks of 512 pages: batch = rounddown_pow_of_two(4 + 2) - 1 = 3; min_free_kbytes
    # = int_sqrt(65536 * 16) = 1024, so min 256, low 320, high_min = 320 / 1 CPU... split
    # over nr_cpus=1: 320; high_max = 16384 / 8 = 2048.
    cfg = ZoneConfig(nr_pageblocks=32, nr_cpus=1, thp=False)
    z = spec.init_zone(cfg)
    assert (z.pcp[0].batch, z.pcp[0].high_min, z.pcp[0].high_max) == (3, 320, 2048)
    z, p = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
    # nr_pcp_alloc: high = clamp(0, 320, 2048) + 3 = 323, 3 pages, alloc_factor 1.
    # rmqueue_bulk: 0 (split from the order-10 block at 0, upper halves to list heads),
    # then 1 (order-0 head), then 2 (order-1 head, 3 goes back): appended in that order.
    pindex = cfg.order_to_pindex(M, 0)
    assert p == 0 and z.pcp[0].lists[pindex] == (1, 2) and z.pcp[0].count == 2
    assert (z.pcp[0].high, z.pcp[0].alloc_factor) == (323, 1)
    for want in (1, 2):
        z, p = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
        assert p == want
    # Empty again: batch 3 << 1 = 6 pages, high 329, alloc_factor 2:
    # 3 (order 0), 4 (order 2 split: 6 to order 1, 5 to order 0), 5, 6 (7 back), 7,
    # 8 (order 3 split: 12, 10, 9 back).
    z, p = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
    assert p == 3 and z.pcp[0].lists[pindex] == (4, 5, 6, 7, 8)
    assert (z.pcp[0].high, z.pcp[0].alloc_factor) == (329, 2)
    assert z.free_area[0][M] == (9,) and z.free_area[1][M] == (10,)
    assert z.free_area[2][M] == (12,)


def test_pcp_high_and_free_counts_ALLOC_POL_041_ALLOC_POL_042() -> None:
    cfg = ZoneConfig(nr_pageblocks=32, nr_cpus=1, thp=False)
    w = Work(spec.init_zone(cfg))
    pcp = w.pcp[0]
    pcp.high, pcp.high_min, pcp.high_max, pcp.batch = 3000, 2500, 16384, 63
    pcp.free_count, pcp.count = 100, 2800
    assert nr_pcp_high(w, pcp, 63, False) == 3000                 # count < high: unchanged
    w.flags.add(ZONE_BELOW_HIGH)
    assert nr_pcp_high(w, pcp, 63, False) == 2800 and pcp.high == 2900  # shrink by free_count
    assert nr_pcp_high(w, pcp, 63, True) == 0 and pcp.high == 2500  # burst: 2900 - 2016
    assert nr_pcp_free(pcp, 63, 2500, True) == 2016               # min(count, 63 << 5)
    assert nr_pcp_free(pcp, 63, 2500, False) == 100               # clamp(100, 63, 2437)
    assert nr_pcp_free(pcp, 63, 40, False) == 1                   # high < batch
    pcp.alloc_factor, pcp.count, pcp.high = 0, 0, 0
    assert nr_pcp_alloc(w, pcp, 2) == 15                          # max(63 >> 2, 2)


def test_drain_frees_everything_ALLOC_OP_024_ALLOC_OP_022() -> None:
    cfg = ZoneConfig(nr_pageblocks=32, nr_cpus=1, thp=False)
    z = spec.init_zone(cfg)
    for _ in range(4):
        z, _ = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0)
    assert z.pcp[0].count == 5
    z, _ = spec.drain_pages(z, 0)
    assert z.pcp[0].count == 0 and z.nr_free_pages == 16384 - 4


def test_flags_and_highatomic_fallback_ALLOC_OP_031_ALLOC_OP_032() -> None:
    z = spec.init_zone(TINY)
    boosted = attrs.evolve(z, flags=frozenset({ZONE_BOOSTED_WATERMARK}))
    after, _ = spec.alloc_pages(boosted, C.GFP_KERNEL, 0)        # ALLOC_KSWAPD: cleared
    assert ZONE_BOOSTED_WATERMARK not in after.flags
    after, _ = spec.alloc_pages(boosted, C.GFP_TRANSHUGE_LIGHT, 0)  # no kswapd bit: kept
    assert ZONE_BOOSTED_WATERMARK in after.flags
    # Only HIGHATOMIC memory is free: GFP_ATOMIC (ALLOC_NON_BLOCK in the slow path) may take
    # it after __rmqueue fails (the 6.12 fix); GFP_KERNEL may not.
    cfg = attrs.evolve(TINY, pageblock_types=(HA,) * 8)
    z = spec.init_zone(cfg)
    assert spec.alloc_pages(z, C.GFP_KERNEL, 1)[1] is None
    z2, p = spec.alloc_pages(z, C.GFP_ATOMIC, 1)
    assert p is not None and z2.get_pfnblock_migratetype(p) == HA
    # A failed high-watermark test marks the zone ZONE_BELOW_HIGH.
    cfg = attrs.evolve(TINY, min_free_kbytes=120)  # min 30 of 32 pages
    z, _ = spec.alloc_pages(spec.init_zone(cfg), C.GFP_KERNEL, 0)
    assert ZONE_BELOW_HIGH in z.flags


def test_free_routes_isolated_blocks_to_buddy_ALLOC_OP_034_ALLOC_OP_003() -> None:
    z = spec.init_zone(TINY)
    z, p = spec.get_page_from_freelist(z, C.GFP_HIGHUSER_MOVABLE, 3, C.ALLOC_WMARK_MIN)
    assert p == 0  # order 3 is not a per-CPU order here (pageblock_order 2): buddy
    z, _ = spec.isolate_pageblock(z, 1)
    z, _ = spec.free_pages(z, 0, 3)
    # split_large_buddy frees pageblock by pageblock with each block's type; ISOLATE and
    # MOVABLE never merge across, and the isolated half is not counted free.
    assert z.free_area[2][ISO] == (4,) and 0 in z.free_area[2][M]
    assert z.nr_free_pages == 28 and z.pcp[0].count == 0
    z, p = spec.alloc_pages(z, C.GFP_KERNEL, 0)
    z, _ = spec.isolate_pageblock(z, z.config.pageblock_of(p))
    z, _ = spec.free_pages(z, p, 0)  # an ISOLATE page bypasses the per-CPU list
    assert z.pcp[0].count == 0


def test_move_freepages_block_ALLOC_OP_006() -> None:
    cfg = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=3, min_free_kbytes=0)
    w = Work(spec.init_zone(cfg))
    assert move_freepages_block(w, 8, M, U) == 8
    assert w.free_area[3][U] == [8] and w.pageblock_migratetype[1] == U
    assert w.free_area[3][M] == [0, 16, 24, 32, 40, 48, 56]


def test_set_knob_ALLOC_OP_035() -> None:
    z = attrs.evolve(spec.init_zone(TINY), watermark_boost=8)
    z, _ = spec.set_knob(z, "min_free_kbytes", 64)
    assert z.watermark == (16, 20, 24, 28) and z.watermark_boost == 0
    assert (z.pcp[0].high_min, z.pcp[0].high_max) == (20, 4)
    z, _ = spec.set_knob(z, "defrag_mode", 1)
    assert z.config.defrag_mode == 1 and z.watermark == (16, 20, 24, 28)


def test_unreserve_is_cited_ALLOC_OP_015() -> None:
    # Blocks 0 and 2 are HIGHATOMIC; each stays a separate order-2 buddy (a HIGHATOMIC block
    # does not merge with its MOVABLE neighbour). Two adjacent ones would merge into one
    # order-3 buddy and go back together (size = max(pageblock, 1 << order)).
    cfg = attrs.evolve(TINY, pageblock_types=(HA, M, HA, M, M, M, M, M))
    z = spec.init_zone(cfg)
    assert z.nr_reserved_highatomic == 8
    z, ok = spec.unreserve_highatomic_pageblock(z, U, force=False)
    assert ok and z.nr_reserved_highatomic == 4   # more than one block: one goes back
    z, ok = spec.unreserve_highatomic_pageblock(z, U, force=False)
    assert not ok                                 # the last block is kept unless forced
    z, ok = spec.unreserve_highatomic_pageblock(z, U, force=True)
    assert ok and z.nr_reserved_highatomic == 0


def test_free_high_threshold_is_a_variant_ALLOC_OP_023() -> None:
    from reference import Zone as ReferenceZone

    def after_three_order1_frees(variant: str) -> tuple[int, spec.Zone, spec.Zone]:
        cfg = ZoneConfig(nr_pageblocks=32, nr_cpus=1, thp=False, variant=variant)
        z, ref = spec.init_zone(cfg), ReferenceZone(cfg)
        blocks = []
        for _ in range(4):
            z, p = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 1)
            assert ref.alloc_pages(C.GFP_HIGHUSER_MOVABLE, 1) == p
            blocks.append(p)
        for p in blocks[:3]:
            z, _ = spec.free_pages(z, p, 1)
            ref.free_pages(p, 1)
        return z.pcp[0].count, z, ref.abstract()

    # batch 3, high_min 320. The third order-1 free in a row sees free_count 4: a burst for
    # v6.15 (4 >= 3: high drops, the CPU's lists are drained), not for v6.18 (4 < 3 + 160).
    count, z, r = after_three_order1_frees("v6.15")
    assert count == 0 and z == r
    count, z, r = after_three_order1_frees("v6.18")
    assert count == 6 and z == r
    # The threshold changed in 6.16: every variant before it (v6.14 and the defrag_mode
    # series' steps) behaves as v6.15, every later one as v6.18.
    for variant in ("v6.14", "defrag_mode", "defrag_mode+async"):
        count, z, r = after_three_order1_frees(variant)
        assert count == 0 and z == r, variant
    count, z, r = after_three_order1_frees("v6.18+atomic-fix")
    assert count == 6 and z == r
