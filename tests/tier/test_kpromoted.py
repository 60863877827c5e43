"""kpromoted RFC v0 as posted: record update, window quirk, promotion test, walk order.

Expected values are derived by hand from mm/kpromoted.c of 2025-03-06 (quoted in
spec/kpromoted.py's docstrings).
"""

from __future__ import annotations

import importlib

import pytest

from spec import tiering as T
from spec.kpromoted import (
    COLD_NOT_ACCESSED,
    COLD_OLD,
    PROMOTE,
    RIGHT_NODE,
    kpromoted_bucket,
    page_should_be_promoted,
)
from spec.tier_common import KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN, NUMA_NO_NODE
from spec.tier_state import TierError

helpers = importlib.import_module("tests.tier.helpers")
HW = KPROMOTED_HW_HINTS


def test_new_record_holds_frequency_two_as_posted_TIER_OP_001_TIER_POL_001() -> None:
    # Created with frequency 1, last_update = now; then (now - now) = 0 is not > window,
    # so the "same window" branch increments it: 2 after the very first access.
    s = T.initial_state(helpers.config("kpromoted-v0"))
    s, r = T.record_access(s, 3, 0, HW, 100)
    assert r == 0
    rec = s.record(3)
    assert (rec.frequency, rec.last_update, rec.recency, rec.hot_node) == (2, 100, 100, 0)
    assert s.stat("kpromoted_record_added") == 1


def test_later_access_restarts_the_window_as_posted_TIER_POL_001() -> None:
    # last_update - now = 100 - 101 wraps to 2**64 - 1 > 5000: frequency back to 1.
    s = T.initial_state(helpers.config("kpromoted-v0"))
    s, _ = T.record_access(s, 3, 0, HW, 100)
    s, _ = T.record_access(s, 3, 0, HW, 101)
    assert (s.record(3).frequency, s.record(3).last_update) == (1, 101)
    # ...while another access in the same jiffy increments it.
    s, _ = T.record_access(s, 3, 0, HW, 101)
    assert s.record(3).frequency == 2


def test_fixed_operands_count_within_five_seconds_TIER_POL_001() -> None:
    s = T.initial_state(helpers.config("kpromoted-v0", kpromoted_as_posted=False))
    s, _ = T.record_access(s, 3, 0, HW, 0)        # new: frequency 1, then 0 - 0 <= 5000: 2
    s, _ = T.record_access(s, 3, 0, HW, 4000)     # 4000 <= 5000: 3
    assert s.record(3).frequency == 3
    s, _ = T.record_access(s, 3, 0, HW, 9001)     # 9001 - 0 > 5000: new window
    assert (s.record(3).frequency, s.record(3).last_update) == (1, 9001)


def test_top_tier_pfn_is_dropped_and_no_node_means_node_one_TIER_OP_001_TIER_INV_004() -> None:
    cfg = helpers.config("kpromoted-v0", placement=tuple([0] + [2] * 15))
    s = T.initial_state(cfg)
    s, _ = T.record_access(s, 0, 1, KPROMOTED_PGTABLE_SCAN, 5)
    assert s.record(0) is None and s.stat("kpromoted_record_toptier") == 1
    assert s.stat("kpromoted_record_pgtscans") == 1
    s, _ = T.record_access(s, 4, NUMA_NO_NODE, KPROMOTED_PGTABLE_SCAN, 5)
    assert s.record(4).hot_node == 1


def test_promotion_test_reasons_TIER_POL_002() -> None:
    w = 5000
    assert page_should_be_promoted(2, 0, 0, 2, 10000, w) == PROMOTE        # 10000 <= 2*w
    assert page_should_be_promoted(2, 0, 0, 2, 10001, w) == COLD_OLD
    assert page_should_be_promoted(2, 0, 0, 1, 10, w) == COLD_NOT_ACCESSED
    assert page_should_be_promoted(0, 0, 0, 9, 10, w) == RIGHT_NODE


def test_bucket_is_hash_64_TIER_POL_003() -> None:
    # hash_64(1, 16) = GOLDEN_RATIO_64 >> 48 = 0x61C8
    assert kpromoted_bucket(1) == 0x61C8
    assert kpromoted_bucket(0) == 0


def test_pass_promotes_first_sight_and_forgets_the_rest_TIER_OP_002() -> None:
    s = T.initial_state(helpers.config("kpromoted-v0"))
    s, _ = T.record_access(s, 3, 0, HW, 100)       # frequency 2 (first sight)
    s, _ = T.record_access(s, 4, 0, HW, 100)
    s, _ = T.record_access(s, 4, 0, HW, 101)       # restarted: frequency 1
    s, _ = T.record_access(s, 5, 1, HW, 100)       # hot_node 1: not node 0's business
    s, out = T.promote_pass(s, 0, 200)
    assert out == [(3, 0, "ok")]
    assert s.node_of[3] == 0 and s.record(3) is None
    assert s.record(4) is None and s.stat("kpromoted_mig_cold_not_accessed") == 1
    assert s.record(5) is not None
    with pytest.raises(TierError):
        T.promote_pass(s, 2, 200)                  # node 2 has no CPUs: no kpromoted2


def test_failed_migration_keeps_the_record_TIER_OP_002_TIER_POL_024() -> None:
    # fast = 2 pages: free 2 is not > high_wmark 0 + 1 page? 2 > 1 holds; fill one first.
    cfg = helpers.config("kpromoted-v0", fast=2, placement=tuple([0] + [2] * 15))
    s = T.initial_state(cfg)                        # node 0: 1 free page; 1 > 0 + 1 fails
    s, _ = T.record_access(s, 3, 0, HW, 100)
    s, out = T.promote_pass(s, 0, 100)
    assert out == [] and s.record(3) is not None and s.stat("pgmigrate_fail") == 1
