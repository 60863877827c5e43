"""Every TIER invariant holds on reachable states and fires on a state broken for it."""

from __future__ import annotations

import importlib

import attrs
import pytest

from spec import tiering as T
from spec.tier_common import KPROMOTED_HW_HINTS, PGHOT_HINT_FAULT
from spec.tier_state import KRecord, Pgdat

helpers = importlib.import_module("tests.tier.helpers")


def _reachable(variant: str) -> T.TierState:
    s = T.initial_state(helpers.config(variant))
    for t, pfn in enumerate((3, 3, 4, 5, 5, 5)):
        s, _ = T.record_access(s, pfn, 1, s.config.sources()[0], 10 * t)
    return s


@pytest.mark.parametrize("variant", ["kpromoted-v0", "pghot-v1", "pghot-v3",
                                     "pghot-v6-default", "pghot-v6-precise", "chmu"])
def test_reachable_states_hold_every_invariant(variant: str) -> None:
    assert T.check_invariants(_reachable(variant)) == []


def _ids(s: T.TierState) -> set[str]:
    return {rid for rid, _ in T.check_invariants(s)}


@pytest.mark.seeded_bug
def test_page_on_two_nodes_or_none_TIER_INV_001() -> None:
    s = _reachable("pghot-v6-default")
    bad = attrs.evolve(s, node_of=s.node_of[:-1])     # the last page lives nowhere
    assert "TIER-INV-001" in _ids(bad)


@pytest.mark.seeded_bug
def test_overfull_node_TIER_INV_002() -> None:
    s = _reachable("pghot-v6-default")
    bad = attrs.evolve(s, node_of=tuple([0] * 9 + list(s.node_of[9:])))
    assert "TIER-INV-002" in _ids(bad)


@pytest.mark.seeded_bug
def test_slot_over_the_rate_limit_TIER_INV_003() -> None:
    s = T.initial_state(helpers.config("numab2", page_shift=20, promote_rate_limit_MBps=1))
    bad = attrs.evolve(s, pgdat=(Pgdat(slot_promoted=2), Pgdat(), Pgdat()))
    assert "TIER-INV-003" in _ids(bad)


@pytest.mark.seeded_bug
def test_record_for_top_tier_page_TIER_INV_004() -> None:
    s = _reachable("kpromoted-v0")
    bad = attrs.evolve(s, node_of=(0,) + s.node_of[1:],
                       records=((0, KRecord(1, 2, 1, 0, 9)),) + s.records)
    assert "TIER-INV-004" in _ids(bad)


@pytest.mark.seeded_bug
def test_record_with_unused_bits_TIER_INV_005() -> None:
    s = _reachable("pghot-v6-precise")
    bad = attrs.evolve(s, records=((3, 1 << 28),))
    assert "TIER-INV-005" in _ids(bad)
    bad = attrs.evolve(_reachable("pghot-v6-default"), records=((3, 256),))
    assert "TIER-INV-005" in _ids(bad)


@pytest.mark.seeded_bug
def test_overfull_heap_and_hot_list_TIER_INV_006() -> None:
    s = _reachable("pghot-v1")          # heap capacity 64 * 50 % * 25 % = 8
    recs = tuple((p, KRecord(1, 2, 1, 1, p)) for p in range(9))
    bad = attrs.evolve(s, records=recs, heaps=(frozenset(), frozenset(range(9)), frozenset()))
    assert "TIER-INV-006" in _ids(bad)
    c = _reachable("chmu")
    assert "TIER-INV-006" in _ids(attrs.evolve(c, chmu_hotlist=tuple(range(65))))


@pytest.mark.seeded_bug
def test_promotion_without_the_test_TIER_PROP_001() -> None:
    s = T.initial_state(helpers.config("pghot-v6-default"))
    s, _ = T.record_access(s, 3, 1, PGHOT_HINT_FAULT, 10)      # frequency 1: not ready
    assert "not ready" in T.promotion_test(s, 3, 0, "ok", 20)
    s, _ = T.record_access(s, 3, 1, PGHOT_HINT_FAULT, 20)
    assert T.promotion_test(s, 3, 0, "ok", 30) == ""
    k = T.initial_state(helpers.config("kpromoted-v0"))
    k, _ = T.record_access(k, 3, 0, KPROMOTED_HW_HINTS, 10)
    k, _ = T.record_access(k, 3, 0, KPROMOTED_HW_HINTS, 11)    # frequency 1 as posted
    assert T.promotion_test(k, 3, 0, "ok", 12) != ""
