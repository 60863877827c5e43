"""The slow path, reclaim, compaction and kswapd: hand-derived checks and the two bugs."""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import pytest

import spec.constants as C
from checker.slowpath_explore import AVAILABILITY, LIVENESS, explore_slowpath
from spec.compaction import (
    COMPACT_SKIPPED,
    COMPACT_SUCCESS,
    MIN_COMPACT_PRIORITY,
    CompactControl,
    compact_finished,
    compaction_suit_allocation_order,
    compaction_suitable,
    kcompactd_do_work,
    try_to_compact_pages,
)
from spec.page_alloc import init_zone, set_knob
from spec.rules import VARIANTS, alloc_has
from spec.slowpath import (
    OUTCOME_NOPAGE,
    OUTCOME_OOM,
    OUTCOME_PAGE,
    Frame,
    alloc_page,
    alloc_pages_full,
    should_compact_retry,
    should_reclaim_retry,
)
from spec.vmscan import (
    KIND_ANON,
    KIND_FILE,
    KIND_KERNEL,
    KIND_SLAB,
    Memory,
    MemWork,
    Page,
    balance_pgdat,
    drain_all_pages,
    pgdat_balanced,
    shrink_node,
    wake_all_kswapds,
)
from spec.zone import SpecError, ZoneConfig


def memory(variant: str = "v6.18", defrag: int = 0, swap: bool = True, **kw: int) -> MemWork:
    args = dict(nr_pageblocks=8, max_page_order=3, pageblock_order=2, nr_cpus=1,
                min_free_kbytes=0, watermark_boost_factor=0, thp=False)
    args.update(kw)
    cfg = ZoneConfig(variant=variant, defrag_mode=defrag, **args)  # type: ignore[arg-type]
    return MemWork(Memory(init_zone(cfg), swap=swap))


def fill(mw: MemWork, kind: str, n: int, gfp: int) -> list[int]:
    out = []
    for _ in range(n):
        f = alloc_page(mw, gfp, 0, kind)
        assert f.page is not None
        out.append(f.page)
    return out


def test_variants_and_features_ALLOC_POL_050() -> None:
    # The seven variants of the issue, in series order; only v6.14 lacks the knob.
    assert VARIANTS == ("v6.14", "defrag_mode-original", "defrag_mode", "defrag_mode+async",
                        "v6.15", "v6.18", "v6.18+atomic-fix")
    assert not alloc_has("v6.14", "defrag_mode")
    assert alloc_has("defrag_mode+async", "kswapd_pageblock_order")
    assert not alloc_has("defrag_mode+async", "pageblock_watermarks")
    with pytest.raises(SpecError):
        ZoneConfig(variant="v6.14", defrag_mode=1)


def test_kinds_get_their_migratetype_ALLOC_POL_050() -> None:
    mw = memory()
    (k,) = fill(mw, KIND_KERNEL, 1, C.GFP_KERNEL)
    (s,) = fill(mw, KIND_SLAB, 1, C.GFP_KERNEL | C.__GFP_RECLAIMABLE)
    assert mw.w.allocated[k].migratetype == C.MIGRATE_UNMOVABLE
    assert mw.w.allocated[s].migratetype == C.MIGRATE_RECLAIMABLE
    assert mw.pages[k].kind == KIND_KERNEL and mw.pages[s].age == 1


def test_reclaim_oldest_first_and_swappiness_ALLOC_OP_050() -> None:
    mw = memory()
    anon = fill(mw, KIND_ANON, 10, C.GFP_HIGHUSER_MOVABLE)
    file = fill(mw, KIND_FILE, 10, C.GFP_HIGHUSER_MOVABLE)
    fill(mw, KIND_KERNEL, 2, C.GFP_KERNEL)
    # 10 pages: anon share 10*60/200 = 3 (oldest three anon), file the other 7 (oldest).
    got = shrink_node(mw, 10, kswapd=False)
    assert got == 10
    assert not any(p in mw.pages for p in anon[:3]) and all(p in mw.pages for p in anon[3:])
    assert not any(p in mw.pages for p in file[:7]) and all(p in mw.pages for p in file[7:])
    assert mw.stats["pswpout"] == 3 and mw.stats["pgsteal_direct"] == 10
    # Without swap, anonymous memory is not reclaimable: only file pages go.
    mw2 = memory(swap=False)
    fill(mw2, KIND_ANON, 4, C.GFP_HIGHUSER_MOVABLE)
    fill(mw2, KIND_FILE, 2, C.GFP_HIGHUSER_MOVABLE)
    assert shrink_node(mw2, 10, kswapd=True) == 2 and mw2.stats["pswpout"] == 0


def test_should_reclaim_retry_bound_ALLOC_POL_055() -> None:
    mw = memory()
    f = Frame(C.GFP_KERNEL, 0, no_progress_loops=15)
    # 16th no-progress loop: still <= MAX_RECLAIM_RETRIES and the zone is all free: retry.
    assert should_reclaim_retry(mw, f, C.ALLOC_WMARK_MIN) == (True, 16)
    # 17th: give up (no highatomic block to unreserve).
    assert should_reclaim_retry(mw, f.__class__(C.GFP_KERNEL, 0, no_progress_loops=16),
                                C.ALLOC_WMARK_MIN) == (False, 17)
    # Progress of a non-costly request resets the count.
    g = Frame(C.GFP_KERNEL, 0, no_progress_loops=16, did_some_progress=True)
    assert should_reclaim_retry(mw, g, C.ALLOC_WMARK_MIN) == (True, 0)


def test_should_compact_retry_ALLOC_POL_056() -> None:
    mw = memory()
    # COMPACT_SUCCESS: costly orders get MAX_COMPACT_RETRIES/4 = 4 retries, then priority.
    f = Frame(C.GFP_KERNEL, 4, compact_result=COMPACT_SUCCESS, compaction_retries=3,
              compact_priority=1)
    assert should_compact_retry(mw, f, 0) == (True, 4, 1)
    f = Frame(C.GFP_KERNEL, 4, compact_result=COMPACT_SUCCESS, compaction_retries=4,
              compact_priority=1)
    # costly: the minimum priority is SYNC_LIGHT (1), so no escalation is left.
    assert should_compact_retry(mw, f, 0) == (False, 5, 1)
    f = Frame(C.GFP_KERNEL, 2, compact_result="COMPACT_COMPLETE", compact_priority=1)
    assert should_compact_retry(mw, f, 0) == (True, 0, MIN_COMPACT_PRIORITY)
    assert should_compact_retry(mw, Frame(C.GFP_KERNEL, 0), 0)[0] is False


def test_compaction_suitable_gap_ALLOC_POL_052() -> None:
    mw = memory()
    w = mw.w
    # 32 free pages: order 3 needs 0 + 2<<3 = 16 < 32; a mark of 16 needs 32 -> fails (<=).
    assert compaction_suitable(w, 3, 0, w.nr_free_pages)
    assert not compaction_suitable(w, 3, 16, w.nr_free_pages)
    assert compaction_suitable(w, 3, 15, w.nr_free_pages)


def test_compaction_suit_allocation_order_ALLOC_POL_053() -> None:
    mw = memory()
    assert compaction_suit_allocation_order(mw, 2, C.ALLOC_WMARK_MIN, False) == COMPACT_SUCCESS
    full = memory()
    fill(full, KIND_ANON, 31, C.GFP_HIGHUSER_MOVABLE)
    # One free page: not the order-2 block, and 1 <= 0 + 2<<2: skipped.
    assert compaction_suit_allocation_order(full, 2, C.ALLOC_WMARK_MIN, False) == COMPACT_SKIPPED


def _fragmented() -> MemWork:
    """Anon pages on every other page of the low half: no free order-2 block there."""
    mw = memory()
    pages = fill(mw, KIND_ANON, 16, C.GFP_HIGHUSER_MOVABLE)
    from spec.vmscan import drain_all_pages, free_page
    for p in pages:
        if p % 2:
            free_page(mw, p)
    drain_all_pages(mw.w)
    return mw


def test_direct_compaction_migrates_up_and_captures_ALLOC_OP_053_ALLOC_OP_054() -> None:
    mw = _fragmented()
    low = sorted(mw.pages)
    assert low == [0, 2, 4, 6, 8, 10, 12, 14]
    ret, captured = try_to_compact_pages(mw, 2, C.MIGRATE_MOVABLE, C.ALLOC_WMARK_MIN,
                                         MIN_COMPACT_PRIORITY)
    # The zone already has free order-2 blocks in its upper half, so it is not run.
    assert ret == COMPACT_SUCCESS and captured is None
    mw2 = _fragmented()
    # Take the upper half's free blocks so only compaction can make an order-2 block.
    fill(mw2, KIND_KERNEL, 16, C.GFP_KERNEL)
    before = mw2.stats["pgmigrate_success"]
    ret, captured = try_to_compact_pages(mw2, 2, C.MIGRATE_MOVABLE, C.ALLOC_WMARK_MIN,
                                         MIN_COMPACT_PRIORITY)
    if captured is not None:
        assert captured % 4 == 0 and mw2.w.allocated[captured].order == 2
        assert mw2.stats["pgmigrate_success"] > before
    else:
        assert ret in ("COMPACT_COMPLETE", COMPACT_SKIPPED)


def test_compaction_moves_pages_to_the_zone_end_ALLOC_OP_053() -> None:
    mw = memory(nr_pageblocks=6)  # 24 pages, blocks of 4
    from spec.vmscan import drain_all_pages, free_page
    pages = fill(mw, KIND_ANON, 8, C.GFP_HIGHUSER_MOVABLE)
    for p in pages[1::2]:
        free_page(mw, p)
    drain_all_pages(mw.w)
    cc = CompactControl(2, C.MIGRATE_MOVABLE, C.ALLOC_WMARK_MIN, "MIGRATE_SYNC_LIGHT", False)
    from spec.compaction import compact_zone
    olds = sorted(mw.pages)
    compact_zone(mw, cc)
    # kcompactd-style run with free order-2 blocks present: already SUCCESS, nothing moved.
    assert sorted(mw.pages) == olds


def test_finish_rules_ALLOC_POL_054() -> None:
    mw = memory()
    cc = CompactControl(2, C.MIGRATE_UNMOVABLE, 0, "MIGRATE_ASYNC", True)
    assert compact_finished(mw, cc, 3, 3) == "COMPACT_COMPLETE"
    assert compact_finished(mw, cc, 0, 8) == COMPACT_SUCCESS  # free order-2+ blocks exist
    # kcompactd under defrag_mode (v6.15): success only with the high mark in free blocks.
    dm = memory("v6.15", defrag=1)
    kc = CompactControl(2, C.MIGRATE_MOVABLE, 0, "MIGRATE_SYNC_LIGHT", False)
    assert compact_finished(dm, kc, 0, 8) == COMPACT_SUCCESS
    fill(dm, KIND_ANON, 29, C.GFP_HIGHUSER_MOVABLE)
    assert dm.w.nr_free_pages_blocks == 0
    assert compact_finished(dm, kc, 0, 8) == "COMPACT_CONTINUE"


def test_kswapd_goal_in_pageblocks_ALLOC_POL_051() -> None:
    dm = memory("v6.15", defrag=1, swap=False)
    fill(dm, KIND_ANON, 29, C.GFP_HIGHUSER_MOVABLE)
    drain_all_pages(dm.w)
    # Anon fills pfns 0..28; free: pfn 29 (order 0) and 30 (order 1), no free pageblock.
    w = dm.w
    assert w.nr_free_pages_blocks == 0 and w.nr_free_pages == 3
    # Watermarks are 0. Order 1 in base pages: 3 > 0 and an order-1 block is free.
    assert pgdat_balanced(w, 1, False)
    # With the pageblock goal, order > 0 counts NR_FREE_PAGES_BLOCKS = 0: not balanced.
    assert not pgdat_balanced(w, 1, True)
    # Order 0 uses base pages even with the goal (the 6.15-rc3 exit-condition fix).
    assert pgdat_balanced(w, 0, True)


def test_wake_kswapd_for_pageblocks_ALLOC_OP_051() -> None:
    dm = memory("defrag_mode+async", defrag=1, min_free_kbytes=8)
    fill(dm, KIND_ANON, 29, C.GFP_HIGHUSER_MOVABLE)
    wake_all_kswapds(dm, 0, C.GFP_KERNEL)
    assert dm.kswapd_order == 2  # max(0, pageblock_order)
    plain = memory("defrag_mode", defrag=1, min_free_kbytes=8)
    fill(plain, KIND_ANON, 29, C.GFP_HIGHUSER_MOVABLE)
    wake_all_kswapds(plain, 0, C.GFP_KERNEL)
    assert plain.kswapd_order == 0


def test_balance_pgdat_reclaims_to_high_ALLOC_OP_052() -> None:
    mw = memory()
    fill(mw, KIND_FILE, 31, C.GFP_HIGHUSER_MOVABLE)
    drain_all_pages(mw.w)
    m = mw.freeze()
    # min_free_kbytes=8: pages_min 2, delta max(2>>2, 32*10/10000) = 0: min = low = high = 2.
    z, _ = set_knob(m.zone, "min_free_kbytes", 8)
    assert z.watermark[:3] == (2, 2, 2)
    mw = MemWork(attrs.evolve(m, zone=z, kswapd_order=0))
    assert mw.w.nr_free_pages == 1  # not balanced: 1 <= 2
    balance_pgdat(mw)
    w = mw.w
    assert mw.kswapd_order == -1 and mw.stats["pageoutrun"] == 1
    # One pass asks max(high, SWAP_CLUSTER_MAX) = 32 pages: every file page goes.
    assert mw.stats["pgsteal_kswapd"] == 31 and w.nr_free_pages > w.wmark_pages(2)


def test_kcompactd_runs_once_ALLOC_OP_055() -> None:
    mw = _fragmented()
    mw.kcompactd_order = 2
    kcompactd_do_work(mw)
    assert mw.kcompactd_order == -1 and mw.stats["compact_daemon_wake"] == 1


def test_direct_reclaim_then_allocate_ALLOC_OP_056_ALLOC_OP_057() -> None:
    mw = memory(swap=True)
    fill(mw, KIND_FILE, 32, C.GFP_HIGHUSER_MOVABLE)
    f = alloc_page(mw, C.GFP_KERNEL, 0, KIND_KERNEL)
    assert f.outcome == OUTCOME_PAGE
    assert mw.stats["allocstall"] == 1 and mw.stats["pgsteal_direct"] >= 1


def test_oom_is_a_result_ALLOC_OP_057_ALLOC_OP_058() -> None:
    mw = memory(swap=False)
    fill(mw, KIND_KERNEL, 32, C.GFP_KERNEL)
    m, f = alloc_pages_full(mw.freeze(), C.GFP_KERNEL, 0, KIND_KERNEL)
    assert f.outcome == OUTCOME_OOM and m.stat("oom_kill") == 1
    # Order 3 is not costly (> PAGE_ALLOC_COSTLY_ORDER is): it also ends in the OOM result;
    # __GFP_RETRY_MAYFAIL never invokes the OOM killer.
    _, f = alloc_pages_full(mw.freeze(), C.GFP_KERNEL, 3, KIND_KERNEL)
    assert f.outcome == OUTCOME_OOM
    _, f = alloc_pages_full(mw.freeze(), C.GFP_KERNEL | C.__GFP_RETRY_MAYFAIL, 0, KIND_KERNEL)
    assert f.outcome == OUTCOME_NOPAGE


@pytest.mark.seeded_bug
def test_explorer_finds_endless_retry_ALLOC_PROP_050() -> None:
    r = explore_slowpath("defrag_mode-original", max_depth=12, properties="liveness")
    (v,) = r.violations
    assert v["property"] == LIVENESS
    assert any("defrag_mode fallback -> retry [alloc_flags ALLOC_WMARK_MIN|ALLOC_NOFRAGMENT]"
               in line for line in v["trace"])
    assert v["trace"][-1].startswith("cycle:")
    assert "7a95a05f15d5" in v["known_bug"]


@pytest.mark.seeded_bug
def test_explorer_finds_gfp_atomic_failure_ALLOC_PROP_051() -> None:
    """v6.18 is ALLOC-OP-057 without its atomic-fix clause (``spec diff`` shows that rule
    alone differs): the availability check catching it is negative evidence for both."""
    r = explore_slowpath("v6.18", max_depth=10, properties="availability")
    (v,) = r.violations
    assert v["property"] == AVAILABILITY
    assert "GFP_ATOMIC" in v["trace"][-1] and "MIGRATE_MOVABLE pageblock" in v["trace"][-1]
    assert "Fixes: e3aa7df331bc" in v["known_bug"]
    fixed = explore_slowpath("v6.18+atomic-fix", max_depth=10, properties="availability")
    assert fixed.violations == []


@pytest.mark.seeded_bug
def test_gfp_atomic_failure_dates_from_patch_3_ALLOC_PROP_051() -> None:
    """The 2026 fix names e3aa7df331bc (patch 3, "mm: page_alloc: defrag_mode") in its Fixes:
    tag: the early ``!can_direct_reclaim`` exit has preceded the defrag_mode fallback since
    then, so every variant from patch 3 on fails the GFP_ATOMIC request, not only v6.18."""
    for variant in ("defrag_mode", "defrag_mode+async", "v6.15"):
        r = explore_slowpath(variant, max_depth=10, properties="availability")
        (v,) = r.violations
        assert "GFP_ATOMIC" in v["trace"][-1], variant
        assert "e3aa7df331bc" in v["known_bug"], variant


def test_only_history_explains_a_violation_ALLOC_PROP_050() -> None:
    from checker.slowpath_explore import known_bug

    # a liveness violation anywhere but in the first posting, or an availability violation
    # before the series or after the fix, would be a new bug: reported as such
    assert known_bug("defrag_mode-original", LIVENESS) is not None
    for variant in ("v6.14", "defrag_mode", "v6.15", "v6.18", "v6.18+atomic-fix"):
        assert known_bug(variant, LIVENESS) is None, variant
    assert known_bug("v6.14", AVAILABILITY) is None
    assert known_bug("v6.18+atomic-fix", AVAILABILITY) is None
    assert known_bug("v6.18", AVAILABILITY) is not None


def test_fixed_variants_terminate_within_bound_ALLOC_PROP_050() -> None:
    for variant in ("defrag_mode", "v6.15", "v6.18+atomic-fix"):
        r = explore_slowpath(variant, max_depth=7, properties="liveness")
        assert r.violations == [] and r.states > 100, variant


def test_cli_explore_slowpath_json_ALLOC_PROP_050() -> None:
    out = subprocess.run([sys.executable, "-m", "checker.cli", "explore", "slowpath",
                          "--variant", "v6.18+atomic-fix", "--depth", "5", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert set(obj) >= {"states", "depth", "states_per_s", "violations"}
    assert obj["violations"] == []
    bad = subprocess.run([sys.executable, "-m", "checker.cli", "explore", "slowpath",
                          "--variant", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown variant" in bad.stderr


def test_spec_diff_names_the_atomic_fix_rule_ALLOC_OP_057() -> None:
    from checker.rulebook import spec_diff

    d = spec_diff("v6.18", "v6.18+atomic-fix")
    # The 2026 fix changes only the slow path's no-direct-reclaim exit.
    assert [r["id"] for r in d["rules"]] == ["ALLOC-OP-057"]
    assert d["features"]["only_v6.18+atomic-fix"] == ["atomic_fix"]
    series = {r["id"] for r in spec_diff("defrag_mode", "defrag_mode+async")["rules"]}
    assert "ALLOC-OP-051" in series  # kswapd woken for pageblock_order
    with pytest.raises(KeyError):
        spec_diff("v6.18", "v9.9")


def test_memory_consistent_holds_and_fires_ALLOC_INV_050() -> None:
    from spec.vmscan import memory_consistent

    mw = memory()
    fill(mw, KIND_ANON, 3, C.GFP_HIGHUSER_MOVABLE)
    fill(mw, KIND_SLAB, 2, C.GFP_KERNEL | C.__GFP_RECLAIMABLE)
    m = mw.freeze()
    assert memory_consistent(m) == []


@pytest.mark.seeded_bug
def test_memory_consistent_catches_wrong_kind_ALLOC_INV_050() -> None:
    from spec.vmscan import memory_consistent

    mw = memory()
    (p,) = fill(mw, KIND_SLAB, 1, C.GFP_KERNEL | C.__GFP_RECLAIMABLE)
    m = mw.freeze()
    # the slab page claims to be anonymous memory: its block is RECLAIMABLE, not MOVABLE
    broken = attrs.evolve(m, pages=(Page(p, 0, KIND_ANON, 0),))
    assert any("migratetype 1" in v for v in memory_consistent(broken))
    # a page that was never allocated
    ghost = attrs.evolve(m, pages=(*m.pages, Page(31, 0, KIND_FILE, 0)))
    assert any("pfn 31" in v for v in memory_consistent(ghost))
    assert memory_consistent(attrs.evolve(m, kswapd_order=99))


def test_availability_holds_without_defrag_mode_ALLOC_PROP_051() -> None:
    # Before the series no request keeps ALLOC_NOFRAGMENT into the slow path, so a failure
    # always means get_page_from_freelist found nothing even with fallbacks allowed.
    r = explore_slowpath("v6.14", max_depth=10, properties="availability")
    assert r.violations == [] and r.states > 1000
