"""Lockstep: the reference slow path, reclaim and compaction against the spec; seeded bugs."""

from __future__ import annotations

import pytest

import checker.commands.slowpath  # noqa: F401  (registers the fuzz area)
from checker.fuzz import run_fuzz
from checker.mutants import SLOWPATH_MUTANTS


def test_reference_agrees_with_spec_ALLOC_OP_057_ALLOC_OP_053_ALLOC_OP_050() -> None:
    r = run_fuzz("reference", examples=60, area="slowpath", steps=30)
    assert r.failure is None, r.program


def caught(name: str, rule_id: str) -> None:
    """The mutant names the rule it breaks, and the lockstep machine notices it."""
    assert rule_id in (SLOWPATH_MUTANTS[name].__doc__ or ""), name
    r = run_fuzz(f"mutant:{name}", seconds=60, area="slowpath", steps=40, shrink_seconds=1)
    assert r.failure is not None, f"mutant {name} not caught in {r.examples} examples"


@pytest.mark.seeded_bug
def test_no_reclaim_retry_bound_caught_ALLOC_POL_055() -> None:
    caught("no-reclaim-retry-bound", "ALLOC-POL-055")

@pytest.mark.seeded_bug
def test_defrag_retry_unchecked_caught_ALLOC_PROP_050() -> None:
    caught("defrag-retry-unchecked", "ALLOC-PROP-050")

@pytest.mark.seeded_bug
def test_reclaim_newest_first_caught_ALLOC_OP_050() -> None:
    caught("reclaim-newest-first", "ALLOC-OP-050")

@pytest.mark.slow
@pytest.mark.seeded_bug
def test_no_capture_caught_ALLOC_OP_053() -> None:
    caught("no-capture", "ALLOC-OP-053")

@pytest.mark.slow
@pytest.mark.seeded_bug
def test_kswapd_balances_in_base_pages_caught_ALLOC_POL_051() -> None:
    caught("kswapd-balances-in-base-pages", "ALLOC-POL-051")

@pytest.mark.seeded_bug
def test_compact_gap_one_request_caught_ALLOC_POL_052() -> None:
    caught("compact-gap-one-request", "ALLOC-POL-052")

@pytest.mark.seeded_bug
def test_compaction_ignores_suitability_caught_ALLOC_POL_053() -> None:
    caught("compaction-ignores-suitability", "ALLOC-POL-053")

@pytest.mark.slow
@pytest.mark.seeded_bug
def test_finish_only_on_own_type_caught_ALLOC_POL_054() -> None:
    caught("finish-only-on-own-type", "ALLOC-POL-054")

@pytest.mark.seeded_bug
def test_direct_compaction_always_async_caught_ALLOC_OP_054() -> None:
    caught("direct-compaction-always-async", "ALLOC-OP-054")

@pytest.mark.slow
@pytest.mark.seeded_bug
def test_kcompactd_idle_caught_ALLOC_OP_055() -> None:
    caught("kcompactd-idle", "ALLOC-OP-055")

@pytest.mark.seeded_bug
def test_wake_kswapd_at_request_order_caught_ALLOC_OP_051() -> None:
    caught("wake-kswapd-at-request-order", "ALLOC-OP-051")

@pytest.mark.slow
@pytest.mark.seeded_bug
def test_kswapd_keeps_boost_caught_ALLOC_OP_052() -> None:
    caught("kswapd-keeps-boost", "ALLOC-OP-052")

@pytest.mark.seeded_bug
def test_no_drain_after_reclaim_caught_ALLOC_OP_056() -> None:
    caught("no-drain-after-reclaim", "ALLOC-OP-056")

@pytest.mark.seeded_bug
def test_clock_only_on_success_caught_ALLOC_OP_058() -> None:
    caught("clock-only-on-success", "ALLOC-OP-058")

@pytest.mark.seeded_bug
def test_slab_not_reclaimable_caught_ALLOC_POL_050() -> None:
    caught("slab-not-reclaimable", "ALLOC-POL-050")

@pytest.mark.seeded_bug
def test_no_retry_after_skipped_compaction_caught_ALLOC_POL_056() -> None:
    caught("no-retry-after-skipped-compaction", "ALLOC-POL-056")


def test_every_slowpath_mutant_has_a_test() -> None:
    import re
    from pathlib import Path

    text = Path(__file__).read_text()
    assert set(re.findall(r'caught\("([a-z-]+)"', text)) == set(SLOWPATH_MUTANTS) - {
        "atomic-fails-under-defrag"}


@pytest.mark.slow
@pytest.mark.seeded_bug
def test_atomic_mutant_caught_ALLOC_PROP_051() -> None:
    r = run_fuzz("mutant:atomic-fails-under-defrag", seconds=240, area="slowpath", steps=40,
                 shrink_seconds=5)
    assert r.failure is not None
