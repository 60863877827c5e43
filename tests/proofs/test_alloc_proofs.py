"""The ALLOC proof obligations, group by group: each test runs its group and holds every verdict
to ``proofs/manifest.json`` (and to the verdict argued by hand in the test), so a change to the
spec that changes a proof fails here. Each test names the rules its obligations check."""

from __future__ import annotations

import pytest

from proofs.runner import COUNTEREXAMPLE, PROVED, Result

from .helpers import run_group


def test_buddy_arithmetic_ALLOC_POL_020_ALLOC_OP_002_ALLOC_OP_004_ALLOC_INV_001() -> None:
    rs = run_group("alloc.buddy")
    assert set(rs) == {"alloc.buddy.involution", "alloc.buddy.parent",
                       "alloc.buddy.merge_stays_in_max_block", "alloc.buddy.split_tiles",
                       "alloc.buddy.split_undoes_merge"}
    assert all(r.verdict == PROVED for r in rs.values())
    # 55 (low, high) pairs with 0 <= low < high <= 10, and ten orders below MAX_PAGE_ORDER.
    assert rs["alloc.buddy.split_tiles"].detail == "55 cases"
    assert rs["alloc.buddy.split_undoes_merge"].detail == "10 cases"


def test_pageblock_ranges_ALLOC_OP_006_ALLOC_INV_003_ALLOC_INV_004_ALLOC_OP_003() -> None:
    rs = run_group("alloc.pageblock")
    assert len(rs) == 4 and all(r.verdict == PROVED for r in rs.values())


def test_watermark_formulas_ALLOC_POL_010_ALLOC_POL_016_ALLOC_INV_010() -> None:
    rs = run_group("alloc.watermark.ordered", "alloc.watermark.u64_product_2e40",
                      "alloc.watermark.u64_product_2e35", "alloc.watermark.mult_frac",
                      "alloc.watermark.boost_cap")
    assert rs["alloc.watermark.ordered"].verdict == PROVED
    assert rs["alloc.watermark.boost_cap"].verdict == PROVED
    assert rs["alloc.watermark.mult_frac"].verdict == PROVED
    assert rs["alloc.watermark.u64_product_2e35"].verdict == PROVED
    # The kernel's (u64)pages_min * managed wraps: pages_min < 2^29 (min_free_kbytes up to
    # INT_MAX, >> 2), so it needs managed >= 2^64 / 2^29 = 2^35 pages.
    edge = rs["alloc.watermark.u64_product_2e40"]
    assert edge.verdict == COUNTEREXAMPLE and edge.counterexample
    call = edge.counterexample.replace("setup_per_zone_wmarks(", "dict(")
    ns = eval(call)  # the counterexample is valid Python: a call with its arguments
    assert (ns["min_free_kbytes"] >> 2) * ns["managed"] >= 1 << 64
    assert ns["managed"] >= 1 << 35


def test_reserve_reductions_ALLOC_POL_012_ALLOC_POL_013() -> None:
    rs = {**run_group("alloc.reserve"), **run_group("alloc.unusable")}
    assert len(rs) == 6 and all(r.verdict == PROVED for r in rs.values())
    # Subset pairs of three flags: 3^3 = 27 (each flag in neither, only the larger, or both).
    assert rs["alloc.reserve.monotone"].detail == "27 cases"


def test_watermark_test_and_the_2022_underflow_ALLOC_POL_014_ALLOC_POL_015() -> None:
    rs = run_group("alloc.watermark.negative_difference_fails",
                      "alloc.watermark.fast_order0_sound", "alloc.watermark.fast_order0_pre_2022",
                      "alloc.watermark.nonvacuous_pass")
    assert rs["alloc.watermark.negative_difference_fails"].verdict == PROVED
    assert rs["alloc.watermark.fast_order0_sound"].verdict == PROVED
    assert rs["alloc.watermark.nonvacuous_pass"].verdict == PROVED
    pre = rs["alloc.watermark.fast_order0_pre_2022"]
    assert pre.verdict == COUNTEREXAMPLE and pre.counterexample
    # The printed call is the spec's (fixed) shortcut on the counterexample's numbers: valid
    # Python that evaluates to False, while the pre-2022 C passed because reserved > free.
    from spec.watermark import watermark_fast_order0_ok
    line = pre.counterexample.splitlines()[1].split("  #")[0]
    assert eval(line, {"watermark_fast_order0_ok": watermark_fast_order0_ok}) is False
    args = eval(line.replace("watermark_fast_order0_ok(", "dict("))
    assert args["reserved"] > args["free_pages"]


def test_claims_ALLOC_POL_030_ALLOC_POL_031_ALLOC_OP_010() -> None:
    rs = run_group("alloc.claim")
    assert len(rs) == 3 and all(r.verdict == PROVED for r in rs.values())


def test_highatomic_bound_ALLOC_INV_009_ALLOC_OP_014() -> None:
    rs = run_group("alloc.highatomic")
    assert len(rs) == 2 and all(r.verdict == PROVED for r in rs.values())


def test_pcp_bounds_ALLOC_POL_011_ALLOC_POL_042_ALLOC_INV_007() -> None:
    rs = run_group("alloc.pcp")
    assert rs["alloc.pcp.batch_high_bounds"].verdict == PROVED
    assert rs["alloc.pcp.free_keeps_batch"].verdict == PROVED
    edge = rs["alloc.pcp.free_at_least_one"]
    assert edge.verdict == COUNTEREXAMPLE and edge.counterexample
    # The edge is high == batch: clamp(free_count, batch, high - batch) = 0.
    last = edge.counterexample.splitlines()[-1]
    args = eval(last.replace("nr_pcp_free(pcp, ", "dict("))
    assert args["high"] == args["batch"]


def test_gfp_migratetype_ALLOC_POL_005() -> None:
    rs = run_group("alloc.gfp")
    assert rs["alloc.gfp.migratetype_pcp"].verdict == PROVED
    edge = rs["alloc.gfp.migratetype_any_mask"]
    assert edge.verdict == COUNTEREXAMPLE
    assert edge.counterexample is not None and "__GFP_MOVABLE|__GFP_RECLAIMABLE" in (
        edge.counterexample)


@pytest.fixture(scope="module")
def bounded() -> dict[str, Result]:
    return {**run_group("alloc.matrix"), **run_group("alloc.nonvacuity"),
            **run_group("alloc.twin")}


def test_matrix_every_operation_preserves_every_invariant_ALLOC_INV_001_to_011(
        bounded: dict[str, Result]) -> None:
    from spec.page_alloc import OPERATIONS
    cells = {k: r for k, r in bounded.items() if k.startswith("alloc.matrix.")}
    # ALLOC-INV-001 .. ALLOC-INV-011 for each of the eight operations.
    assert len(cells) == 11 * len(OPERATIONS) == 88
    assert all(r.verdict == PROVED for r in cells.values())
    assert len({r.states for r in cells.values()}) == 1


def test_every_invariant_is_not_vacuous_ALLOC_INV_001_to_011(
        bounded: dict[str, Result]) -> None:
    nv = {k: r for k, r in bounded.items() if k.startswith("alloc.nonvacuity.")}
    assert len(nv) == 11 and all(r.verdict == PROVED and r.counterexample for r in nv.values())


@pytest.mark.seeded_bug
def test_broken_twins_yield_counterexamples_ALLOC_INV_001_to_011(
        bounded: dict[str, Result]) -> None:
    """ALLOC-INV-001 ALLOC-INV-002 ALLOC-INV-003 ALLOC-INV-004 ALLOC-INV-005 ALLOC-INV-006
    ALLOC-INV-007 ALLOC-INV-008 ALLOC-INV-009 ALLOC-INV-010 ALLOC-INV-011: each broken twin's
    counterexample is a Python program that replays the trace, reaches the printed state,
    and that state breaks exactly the invariant the twin targets (among others, maybe)."""
    from spec.invariants import INVARIANTS
    from spec.rules import rules_of
    twins = {k: r for k, r in bounded.items() if k.startswith("alloc.twin.ALLOC-INV-")}
    assert len(twins) == 11
    for name, r in twins.items():
        assert r.verdict == COUNTEREXAMPLE and r.counterexample, name
        ns: dict[str, object] = {}
        exec(r.counterexample, ns)  # replays, and asserts the printed final state
        inv_id = name.rsplit(".", 1)[1]
        (inv,) = [f for f in INVARIANTS if rules_of(f)[0] == inv_id]
        assert inv(ns["z"]), f"{name}: the replayed state does not break {inv_id}"  # type: ignore[arg-type]


@pytest.mark.seeded_bug
def test_a_merge_forgetting_twin_is_caught_in_two_steps_ALLOC_INV_003_ALLOC_OP_002() -> None:
    # Allocating one page splits an order-2 block: the page at pfn 4 goes out and its buddy
    # (pfn 5) stays free at order 0. Freeing pfn 4 without the merge loop leaves the two
    # order-0 buddies 4 and 5 both free: the shortest trace is two steps.
    from proofs.alloc_bounded import twin_counterexample
    out = twin_counterexample("free_pages_no_merge_twin")
    assert out.verdict == COUNTEREXAMPLE and out.counterexample
    lines = out.counterexample.splitlines()
    assert lines[4].startswith("z = init_zone(ZoneConfig(")
    assert lines[5].startswith("z, _ = alloc_pages(z, Gfp(")
    assert lines[6].startswith("z, _ = free_pages_no_merge_twin(z, ")


@pytest.mark.slow
def test_deep_matrix_nightly_ALLOC_INV_001_to_011() -> None:
    rs = run_group("alloc.matrix_deep.all")
    (r,) = rs.values()
    assert r.verdict == PROVED and r.states is not None and r.states > 21329


def test_nofragment_guarantee_ALLOC_PROP_001() -> None:
    r = run_group("alloc.prop.nofragment")["alloc.prop.nofragment"]
    assert r.verdict == PROVED
    # Every pageblock is MOVABLE with one free page: a claim needs half a block (2 pages),
    # so only a steal could serve an unmovable page, and ALLOC_NOFRAGMENT forbids it.
    assert "the unmovable request failed" in r.detail


@pytest.mark.seeded_bug
def test_defrag_mode_ignored_pollutes_ALLOC_PROP_001_ALLOC_POL_007() -> None:
    from spec.invariants import nofragment_guarantee
    r = run_group("alloc.twin.ALLOC-PROP-001")["alloc.twin.ALLOC-PROP-001"]
    assert r.verdict == COUNTEREXAMPLE and r.counterexample
    ns: dict[str, object] = {}
    exec(r.counterexample, ns)
    lines = r.counterexample.splitlines()
    assert lines[-2].startswith("z, _ = alloc_pages_ignoring_defrag_mode_twin(z, Gfp('GFP_KERNEL')")
    # Replaying all but the last step gives the state before the polluting allocation.
    before_ns: dict[str, object] = {}
    exec("\n".join(lines[:-2]), before_ns)
    from spec.constants import GFP_KERNEL
    assert nofragment_guarantee(before_ns["z"], ns["z"], GFP_KERNEL)  # type: ignore[arg-type]


def test_slow_path_flags_and_their_variants_ALLOC_POL_006() -> None:
    rs = run_group("alloc.gfp.highatomic_needs_high",
                   "alloc.gfp.variants_differ_only_on_highatomic")
    # 2^6 masks of the bits read x 3 order classes x defrag_mode x 2 variants x rt_task.
    assert rs["alloc.gfp.highatomic_needs_high"].detail == f"{64 * 3 * 2 * 2 * 2} cases"
    assert rs["alloc.gfp.variants_differ_only_on_highatomic"].detail == f"{64 * 3 * 2 * 2} cases"
    assert all(r.verdict == PROVED for r in rs.values())
