"""pghot v1/v3/v6: bit-exact records, wrap-around, kmigrated, rate limit, adaptive threshold.

Expected words are derived by hand from the v6 headers (default u8: freq bits 0-1, bucket bits
2-6, ready bit 7; precise u32: nid 0-9, freq 10-12, time 13-26, ready 31).
"""

from __future__ import annotations

import importlib

from spec import tiering as T
from spec.numab import adjust_threshold, free_space_enough, hint_fault_latency, migrate_balanced
from spec.pghot import DEFAULT, PRECISE, V3, pghot_access_latency, pghot_update_record
from spec.tier_common import KPROMOTED_HW_HINTS, NUMA_NO_NODE, PGHOT_HINT_FAULT

helpers = importlib.import_module("tests.tier.helpers")
HF = PGHOT_HINT_FAULT


def test_default_record_bits_TIER_OP_010_TIER_POL_010() -> None:
    w, ready = pghot_update_record(DEFAULT, 0, 0, 0, 3000, 2)
    assert (w, ready) == (0b0000_0001, False)              # freq 1, bucket 0
    w, ready = pghot_update_record(DEFAULT, w, 0, 200, 3000, 2)
    # bucket 200 >> 7 = 1; latency 128 ms <= 3000: freq 2 >= 2: ready
    assert (w, ready) == (0x80 | (1 << 2) | 2, True)
    w, _ = pghot_update_record(DEFAULT, w, 0, 300, 3000, 2)
    w, _ = pghot_update_record(DEFAULT, w, 0, 400, 3000, 2)
    assert w & 3 == 3                                       # saturates at 3


def test_default_window_and_wrap_around_TIER_POL_011() -> None:
    # 3100 & 0xF80 = 3072 ms > 3000: a new window.
    assert pghot_access_latency(DEFAULT, 0, 3100) == 3072
    w, _ = pghot_update_record(DEFAULT, 1, 0, 3100, 3000, 2)
    assert w & 3 == 1
    # 4101 jiffies later only the bucket bits count: 4101 & 0xF80 = 0: "no time passed".
    assert pghot_access_latency(DEFAULT, 0, 4101) == 0
    w, ready = pghot_update_record(DEFAULT, 1, 0, 4101, 3000, 2)
    assert w & 3 == 2 and ready


def test_precise_record_bits_and_wrap_TIER_OP_010_TIER_POL_010_TIER_POL_011() -> None:
    w, ready = pghot_update_record(PRECISE, 0, 1, 100, 5000, 2)
    assert (w, ready) == (1 | (1 << 10) | (100 << 13), False)
    w2, ready = pghot_update_record(PRECISE, w, 1, 100 + 16384, 5000, 2)
    assert (w2 >> 10) & 7 == 2 and ready and w2 >> 31 == 1   # 16384 jiffies wrap to 0
    assert pghot_access_latency(PRECISE, 100, 100 + 16383) == 16383


def test_v3_ready_is_bit_63_TIER_POL_010() -> None:
    w, ready = pghot_update_record(V3, 0, 1, 5, 5000, 1)
    assert ready and w >> 63 == 1 and w & 7 == 1 and (w >> 3) & 1023 == 1


def test_record_access_filters_TIER_OP_011() -> None:
    cfg = helpers.config("pghot-v6-default", placement=tuple([0] + [2] * 15))
    s = T.initial_state(cfg)
    s, r = T.record_access(s, 0, 1, HF, 10)                 # top-tier page: ignored
    assert r == 0 and s.record(0) is None
    s, r = T.record_access(s, 3, 2, HF, 10)                 # from the page's own node
    assert r == 0 and s.record(3) is None
    s, r = T.record_access(s, 3, 7, HF, 10)                 # no node 7
    assert r == -22
    s, r = T.record_access(s, 3, 1, 1, 10)                  # no page-table source in v6
    assert r == -22
    s, _ = T.record_access(s, 3, NUMA_NO_NODE, KPROMOTED_HW_HINTS, 10)
    assert s.record(3) == 1 and s.stat("pghot_recorded_accesses") == 1


def _two_hits(variant: str, nid: int) -> T.TierState:
    s = T.initial_state(helpers.config(variant))
    s, _ = T.record_access(s, 3, nid, HF, 10)
    s, _ = T.record_access(s, 3, nid, HF, 20)
    return s


def test_kmigrated_default_goes_to_target_nid_precise_to_accessor_TIER_OP_012() -> None:
    s = _two_hits("pghot-v6-default", 1)
    assert 3 // 32768 in s.hot_sections and 2 in s.kmigrated_activate
    s, out = T.promote_pass(s, 2, 30)
    assert out == [(3, 0, "ok")] and s.record(3) is None    # pghot_target_nid = 0
    s = _two_hits("pghot-v6-precise", 1)
    s, out = T.promote_pass(s, 2, 30)
    assert out == [(3, 1, "ok")]
    s, out = T.promote_pass(s, 2, 40)                        # not activated: no work
    assert out == []


def test_consumed_record_is_lost_when_cold_TIER_OP_012_TIER_POL_022() -> None:
    s = _two_hits("pghot-v6-precise", 1)
    # latency 6000 - 20 >= threshold 5000 (the window): not promoted, record gone.
    s, out = T.promote_pass(s, 2, 6000)
    assert out == [] and s.record(3) is None and s.node_of[3] == 2


def test_rate_limit_one_page_per_slot_TIER_POL_021_TIER_INV_003() -> None:
    # page_shift 20: 1 MB/s = 1 page per second.
    s = T.initial_state(helpers.config("pghot-v6-precise", page_shift=20,
                                       promote_rate_limit_MBps=1))
    for pfn in (3, 4):
        s, _ = T.record_access(s, pfn, 1, HF, 2000)
        s, _ = T.record_access(s, pfn, 1, HF, 2001)
    s, out = T.promote_pass(s, 2, 2002)
    assert [o[0] for o in out] == [3]
    assert s.pgdat[1].slot_promoted == 1 and not T.check_invariants(s)
    s, _ = T.record_access(s, 4, 1, HF, 3100)
    s, _ = T.record_access(s, 4, 1, HF, 3101)
    s, out = T.promote_pass(s, 2, 3102)                      # 3102 - 2002 > 1000: new slot
    assert [o[0] for o in out] == [4]


def test_rate_limit_slot_arithmetic_TIER_POL_021() -> None:
    from spec.numab import rate_limit_slot
    assert rate_limit_slot(1500, 0, 10, 0, 4) == (False, 1500, 10)   # new slot starts here
    assert rate_limit_slot(1600, 1500, 13, 10, 4) == (False, 1500, 10)
    assert rate_limit_slot(1700, 1500, 14, 10, 4) == (True, 1500, 10)


def test_adaptive_threshold_steps_TIER_POL_022() -> None:
    # unit = 1000 * 2 / 16 = 125; ref_cand 100: > 110 lowers, < 90 raises.
    assert adjust_threshold(0, 1000, 111, 100) == 875
    assert adjust_threshold(0, 1000, 89, 100) == 1125
    assert adjust_threshold(125, 1000, 500, 100) == 125
    assert adjust_threshold(2000, 1000, 0, 100) == 2000
    assert adjust_threshold(600, 1000, 100, 100) == 600


def test_free_space_bypass_and_balance_TIER_POL_020_TIER_POL_024() -> None:
    assert free_space_enough(101, 50, 50) and not free_space_enough(100, 50, 50)
    assert migrate_balanced(2, 0, 1) and not migrate_balanced(1, 0, 1)
    s = T.initial_state(helpers.config("pghot-v6-precise", enough_floor_pages=0))
    s, _ = T.record_access(s, 3, 1, HF, 10)
    s, _ = T.record_access(s, 3, 1, HF, 20)
    s, out = T.promote_pass(s, 2, 9000)          # stale, but the target has room: bypass
    assert out == [(3, 1, "nrl")] and s.pgdat[1].pgpromote_candidate_nrl == 1


def test_hint_fault_latency_masked_TIER_POL_023() -> None:
    assert hint_fault_latency(5, (1 << 21) - 5, 21) == 10


def test_v1_hash_then_heap_TIER_OP_013_TIER_OP_014() -> None:
    s = T.initial_state(helpers.config("pghot-v1"))
    s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 10)
    assert s.record(3).frequency == 1 and 3 not in s.heaps[1]
    s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 20)
    assert s.record(3).frequency == 2 and 3 in s.heaps[1]
    s, _ = T.record_access(s, 3, 0, KPROMOTED_HW_HINTS, 30)   # node changed: new window
    assert s.record(3).frequency == 1 and 3 in s.heaps[1] and 3 not in s.heaps[0]
    s, _ = T.record_access(s, 3, 0, KPROMOTED_HW_HINTS, 40)
    assert 3 in s.heaps[0] and 3 in s.heaps[1]                 # in two heaps, as posted
    s, out = T.promote_pass(s, 0, 50)
    assert out == [(3, 0, "ok")] and not any(3 in h for h in s.heaps)


def test_v2_frequency_wraps_on_the_eighth_access_TIER_POL_012_TIER_OP_013() -> None:
    from spec.pghot import v2_next_frequency
    assert [v2_next_frequency(f) for f in range(8)] == [1, 2, 3, 4, 5, 6, 7, 0]
    s = T.initial_state(helpers.config("pghot-v2"))
    for t in range(8):                       # 1 (new) then 2..7, then 8 -> 0 in 3 bits
        s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 10 + t)
    assert s.record(3).frequency == 0 and 3 not in s.heaps[1]
    s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 20)
    assert s.record(3).frequency == 1


def test_v2_time_is_19_bits_TIER_OP_013() -> None:
    s = T.initial_state(helpers.config("pghot-v2"))
    s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 100)
    s, _ = T.record_access(s, 3, 1, KPROMOTED_HW_HINTS, 100 + (1 << 19))   # aliases to 100
    assert s.record(3).frequency == 2 and s.record(3).last_update == 100
