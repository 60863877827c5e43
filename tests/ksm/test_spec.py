"""Hand-derived checks of the KSM spec, rule by rule (numbers from mm/ksm.c, the selftests
and the measurements in the reference digest, never from the implementation)."""

from __future__ import annotations

import pytest

from checker.ksm_scenario import SpecRunner
from spec import ksm


def runner(**knobs: int) -> SpecRunner:
    return SpecRunner(knobs)


def test_fresh_pages_are_volatile_first_pass_KSM_OP_002() -> None:
    # digest exp basic: pass 1 volatile=10, general_profit -640; pass 2 shared 1 sharing 9.
    r = runner()
    r.create_process("a", ("cf",) * 10)
    r.madvise("a", 0, 10, "mergeable")
    r.full_scan()
    c = r.observe()
    assert (c["pages_volatile"], c["pages_shared"], c["general_profit"]) == (10, 0, -640)
    r.full_scan()
    c = r.observe()
    assert (c["pages_shared"], c["pages_sharing"], c["pages_unshared"]) == (1, 9, 0)


def test_general_and_process_profit_KSM_POL_002_KSM_POL_003() -> None:
    r = runner()
    r.create_process("a", ("cf",) * 10)
    r.madvise("a", 0, 10, "mergeable")
    rec = r.scan()
    assert rec["general_profit"] == 9 * 4096 - 10 * 64 == 36224
    assert rec["processes"]["a"]["ksm_merging_pages"] == 10
    assert rec["processes"]["a"]["ksm_process_profit"] == 10 * 4096 - 10 * 64 == 40320


@pytest.mark.parametrize(("n", "m"), [(10, 256), (600, 256), (513, 256), (9, 8), (8, 8),
                                      (10, 8), (7, 2), (16, 4)])
def test_chain_counts_follow_assert_ksm_pages_count_KSM_OP_005_KSM_OP_006(n: int, m: int) -> None:
    # ksm_tests.c assert_ksm_pages_count: N mod M in {0,1} -> shared = N/M, sharing =
    # shared*(M-1); otherwise shared = N/M + 1, sharing = N - shared.
    if n % m in (0, 1):
        shared = n // m
        sharing = shared * (m - 1)
    else:
        shared = n // m + 1
        sharing = n - shared
    r = runner(max_page_sharing=m)
    r.create_process("a", ("D",) * n)
    r.madvise("a", 0, n, "mergeable")
    rec = r.scan()
    assert (rec["pages_shared"], rec["pages_sharing"]) == (shared, sharing)
    assert rec["stable_node_chains"] == (1 if shared > 1 else 0)
    assert rec["stable_node_dups"] == (shared if shared > 1 else 0)


def test_full_dups_miss_and_leftover_stays_unshared_KSM_OP_004() -> None:
    r = runner(max_page_sharing=4)
    r.create_process("a", ("D",) * 9)      # 4 + 4 + 1 leftover
    r.madvise("a", 0, 9, "mergeable")
    rec = r.scan()
    assert (rec["pages_shared"], rec["pages_sharing"], rec["pages_unshared"]) == (2, 6, 1)


def test_append_counts_first_item_as_shared_KSM_OP_007() -> None:
    r = runner()
    r.create_process("a", ("X", "X", "X"))
    r.madvise("a", 0, 3, "mergeable")
    rec = r.scan()
    assert (rec["pages_shared"], rec["pages_sharing"]) == (1, 2)


def test_zero_pages_digest_measurement_KSM_OP_008() -> None:
    # digest 5: 10 zero + 4 identical: pass2 zero=10 shared=1 sharing=3 volatile=10
    # general_profit 52352; pass3 rmap=4 volatile=0 general_profit 52992.
    r = runner(use_zero_pages=1)
    r.create_process("a", ("0",) * 10 + ("Z",) * 4)
    r.madvise("a", 0, 14, "mergeable")
    r.full_scan()
    r.full_scan()
    c = r.observe()
    assert (c["ksm_zero_pages"], c["pages_shared"], c["pages_sharing"],
            c["pages_volatile"], c["general_profit"]) == (10, 1, 3, 10, 52352)
    r.full_scan()
    c = r.observe()
    assert c["processes"]["a"]["ksm_rmap_items"] == 4 and c["general_profit"] == 52992
    r.write("a", 0, "q")                     # write to a zero-merged page: -1 at once
    assert r.observe()["ksm_zero_pages"] == 9


def test_smart_scan_skip_schedule_KSM_OP_009() -> None:
    # digest 2.4: an item created in pass 1 is skipped in passes 5,7,8,10-13,15-22.
    r = runner(smart_scan=1)
    r.create_process("a", tuple(f"v{i}" for i in range(3)))
    r.madvise("a", 0, 3, "mergeable")
    skipped = []
    for n in range(1, 24):
        before = r.state.pages_skipped
        r.full_scan()
        if r.state.pages_skipped > before:
            skipped.append(n)
    assert skipped == [5, 7, 8, 10, 11, 12, 13, *range(15, 23)]


def test_registration_order_and_pass_order_KSM_OP_001_KSM_OP_010() -> None:
    # b registers first, so a's page is scanned later and becomes the KSM page.
    r = runner()
    r.create_process("a", ("X",))
    r.create_process("b", ("X",))
    r.madvise("b", 0, 1, "mergeable")
    r.madvise("a", 0, 1, "mergeable")
    assert r.state.mm_list == ["b", "a"]
    a_page = r.state.mms["a"].ptes[0]
    r.scan()
    assert r.state.mms["b"].ptes[0] == a_page
    assert r.state.pages[a_page].ksm


def test_unmergeable_counters_wait_for_ksmd_KSM_OP_011_KSM_OP_003() -> None:
    r = runner()
    r.create_process("a", ("X",) * 10)
    r.madvise("a", 0, 10, "mergeable")
    r.scan()
    r.madvise("a", 0, 10, "unmergeable")
    c = r.observe()
    assert (c["pages_shared"], c["pages_sharing"]) == (1, 9)   # unchanged until ksmd
    r.full_scan()
    c = r.observe()
    assert (c["pages_shared"], c["pages_sharing"], c["processes"]["a"]["ksm_rmap_items"]) \
        == (0, 0, 0)
    assert r.state.mm_list == []


def test_write_to_merged_page_KSM_OP_012() -> None:
    # digest exp: write to page0: counters unchanged until the next pass: sharing 9->8,
    # volatile 1; one more pass: unshared 1.
    r = runner()
    r.create_process("a", ("X",) * 10)
    r.madvise("a", 0, 10, "mergeable")
    r.scan()
    r.write("a", 0, "Y")
    assert r.observe()["pages_sharing"] == 9
    r.full_scan()
    c = r.observe()
    assert (c["pages_sharing"], c["pages_volatile"]) == (8, 1)
    r.full_scan()
    assert r.observe()["pages_unshared"] == 1


def test_fork_then_one_pass_KSM_OP_013() -> None:
    # digest exp: child at fork rmap 0 merging 0; +1 pass: sharing 8 -> 17, child rmap 10
    # merging 9 (parent had 9 merged pages + 1 other).
    r = runner()
    r.create_process("a", ("X",) * 9 + ("u1",))
    r.madvise("a", 0, 10, "mergeable")
    r.scan()
    r.fork("a", "c")
    c = r.observe()["processes"]["c"]
    assert (c["ksm_rmap_items"], c["ksm_merging_pages"]) == (0, 0)
    r.full_scan()
    c = r.observe()
    assert c["pages_sharing"] == 17
    assert (c["processes"]["c"]["ksm_rmap_items"], c["processes"]["c"]["ksm_merging_pages"]) \
        == (10, 9)


def test_fork_counters_before_the_fix_v6_17_KSM_OP_013() -> None:
    s = ksm.new_state(variant="v6.17")
    s, _ = ksm.create_process(s, "a", ("X",) * 4)
    s, _ = ksm.madvise(s, "a", 0, 4, "mergeable")
    s, _ = ksm.scan(s)
    s, _ = ksm.fork(s, "a", "c")
    assert s.mms["c"].ksm_merging_pages == 4 and s.mms["c"].ksm_rmap_items == 4


def test_child_exit_cleaned_next_pass_KSM_OP_014() -> None:
    r = runner()
    r.create_process("a", ("X",) * 9)
    r.madvise("a", 0, 9, "mergeable")
    r.scan()
    r.fork("a", "c")
    r.scan()
    assert r.observe()["pages_sharing"] == 17
    r.exit_process("c")
    assert r.observe()["pages_sharing"] == 17          # stale until the next pass
    r.full_scan()
    assert r.observe()["pages_sharing"] == 8


def test_munmap_zero_pages_KSM_OP_015() -> None:
    r = runner(use_zero_pages=1)
    r.create_process("a", ("0",) * 5)
    r.madvise("a", 0, 5, "mergeable")
    r.scan()
    r.munmap("a", 0, 2)
    assert r.observe()["ksm_zero_pages"] == 3


def test_prctl_marks_everything_and_unmerges_KSM_OP_016() -> None:
    r = runner()
    r.create_process("a", ("X",) * 4)
    r.prctl_memory_merge("a", 1)
    assert r.scan()["pages_sharing"] == 3
    r.prctl_memory_merge("a", 0)
    assert all(not m for m in r.state.mms["a"].mergeable)
    assert r.scan()["pages_sharing"] == 0


def test_sksm_merges_in_the_call_KSM_OP_017() -> None:
    s = ksm.new_state(variant="sksm")
    s, _ = ksm.create_process(s, "a", ("X", "X", "0", "Y"))
    s, _ = ksm.create_process(s, "b", ("X", "Y", "0"))
    s, _ = ksm.madvise(s, "a", 0, 4, "merge")
    s, _ = ksm.madvise(s, "b", 0, 3, "merge")
    c = ksm.sksm_counters(s)
    # canonical X and Y; X mapped 3 times, Y twice; two zero pages.
    assert c == {"sksm_pages_shared": 2, "sksm_pages_sharing": 3, "sksm_zero_pages": 2}
    s, _ = ksm.write(s, "a", 0, "X")           # any store COWs an SKSM page
    assert ksm.sksm_counters(s)["sksm_pages_sharing"] == 2
    assert ksm.check_isolation(s) == []


def test_scan_stops_after_two_unchanged_passes_KSM_OP_018() -> None:
    r = runner()
    r.create_process("a", ("X",) * 2)
    r.madvise("a", 0, 2, "mergeable")
    r.scan()
    # passes: 1 volatile, 2 merged, 3 and 4 unchanged -> 4 passes.
    assert r.state.full_scans == 4


def test_knob_defaults_KSM_POL_001() -> None:
    s = ksm.new_state()
    assert s.knobs["smart_scan"] == 0 and s.knobs["max_page_sharing"] == 256
    assert s.knobs["use_zero_pages"] == 0
    with pytest.raises(ksm.KsmError):
        ksm.new_state({"max_page_sharing": 1})


def test_operations_do_not_change_their_input() -> None:
    s = ksm.new_state()
    s1, _ = ksm.create_process(s, "a", ("X", "X"))
    s2, _ = ksm.madvise(s1, "a", 0, 2, "mergeable")
    ksm.scan(s2)
    assert s.mms == {} and s1.mm_list == [] and s2.full_scans == 0
