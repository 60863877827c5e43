"""The TIER proof obligations, held to ``proofs/manifest.json``; each test names its rules."""

from __future__ import annotations

from proofs.runner import COUNTEREXAMPLE, PROVED
from spec.pghot import DEFAULT, PRECISE, pghot_update_record

from .helpers import run_group


def test_pghot_record_bounds_TIER_POL_010_TIER_POL_011_TIER_OP_010() -> None:
    rs = run_group("tier.pghot.latency_bounds", "tier.pghot.update_saturates",
                   "tier.pghot.new_window_before_wrap")
    assert all(r.verdict == PROVED for r in rs.values())


def test_pghot_time_bucket_aliasing_TIER_POL_011_TIER_OP_010() -> None:
    rs = run_group("tier.pghot.fresh_after_wrap", "tier.pghot.precise_fresh_after_wrap")
    for name, layout, wrap in (("tier.pghot.fresh_after_wrap", DEFAULT, 4096),
                               ("tier.pghot.precise_fresh_after_wrap", PRECISE, 1 << 14)):
        r = rs[name]
        assert r.verdict == COUNTEREXAMPLE and r.counterexample
        ns = {"pghot_update_record": pghot_update_record, "DEFAULT": DEFAULT,
              "PRECISE": PRECISE}
        exec(r.counterexample, ns)  # valid Python: the two updates on ints
        w1, ready = ns["w1"], ns["ready"]
        assert isinstance(w1, int) and (w1 >> layout.freq_shift) & layout.freq_max == 2
        assert ready is True
        # Hand-derived: the lag exceeds the window, and aliasing needs at least one wrap
        # minus a bucket (the default record compares 128-jiffy buckets mod 32).
        lag = int(r.counterexample.splitlines()[2].split()[1])
        assert lag >= wrap - 128


def test_numa_balancing_arithmetic_TIER_POL_021_TIER_POL_022_TIER_POL_023() -> None:
    rs = run_group("tier.numab.rate_limit_slot", "tier.numab.threshold_bounds",
                   "tier.numab.hint_latency_wraps")
    assert rs["tier.numab.rate_limit_slot"].verdict == PROVED
    assert rs["tier.numab.threshold_bounds"].verdict == PROVED
    edge = rs["tier.numab.hint_latency_wraps"]
    assert edge.verdict == COUNTEREXAMPLE and edge.counterexample
    # 21 bits of milliseconds wrap after 2^21 ms: the counterexample's gap is beyond that.
    gap = int(edge.counterexample.split("scan was ")[1].split()[0])
    assert gap >= 1 << 21


def test_kpromoted_window_as_posted_and_fixed_TIER_POL_001() -> None:
    from spec.kpromoted import kpromoted_new_window
    rs = run_group("tier.kpromoted")
    assert rs["tier.kpromoted.window_fixed"].verdict == PROVED
    edge = rs["tier.kpromoted.window_as_posted"]
    assert edge.verdict == COUNTEREXAMPLE and edge.counterexample
    call = edge.counterexample.split("  #")[0]
    assert eval(call, {"kpromoted_new_window": kpromoted_new_window}) is True
    args = eval(call.replace("kpromoted_new_window(", "tuple((").replace(", as_posted=True)",
                                                                        ",))"))
    last, now, window = args
    # Hand-derived: inside the window (0 < now - last <= window), yet restarted, because
    # last - now wraps to 2^64 - (now - last) > window.
    assert 0 < now - last <= window
