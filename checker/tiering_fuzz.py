"""Lockstep fuzzing of the TIER area: the spec and an implementation on the same operations.

One Hypothesis ``RuleBasedStateMachine`` draws a small machine (two top-tier nodes with CPUs,
one lower-tier node, a variant, knobs) in ``@initialize`` and then record_access calls (any
page, any node or NUMA_NO_NODE, any source of the variant, time moving forward by steps that
hit the interesting edges: the same jiffy, a 128-jiffy bucket, the window, the 4096-jiffy
wrap of the default record), NUMA scans, promotion passes and demotions. After every step
it compares the results and ``abstract()`` with the spec's state, runs every TIER invariant,
and checks TIER-PROP-001 for every promotion.

Seeded bugs (``mutant:NAME``) are broken twins of the reference; each must be caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reference.tiering import TierMachine
from spec import tiering as T
from spec.tier_common import NUMA_NO_NODE, TIER_VARIANTS
from spec.tier_state import NodeConfig, TierConfig, TierError, TierState

ImplFactory = Callable[[TierConfig], Any]
NR_PAGES = 24
TIME_STEPS = (0, 0, 1, 7, 127, 128, 500, 1000, 1001, 2999, 3001, 4096, 5001, 16384, 60001)


@st.composite
def tier_configs(draw: st.DrawFn) -> TierConfig:
    variant = draw(st.sampled_from(TIER_VARIANTS))
    top = draw(st.integers(3, 8))
    placement = [2] * NR_PAGES
    for i in draw(st.lists(st.integers(0, NR_PAGES - 1), max_size=3, unique=True)):
        placement[i] = i % 2
    # Lower tier: a roomy CXL node, or one exactly as big as its initial pages (demotion then
    # fills it: next_demotion_node must skip it), optionally with a second lower-tier node
    # (without CPUs: no access comes from it) where demotion goes next.
    lower = [NodeConfig(placement.count(2) if draw(st.booleans()) else 40, False, False)]
    if draw(st.booleans()):
        lower.append(NodeConfig(draw(st.sampled_from((2, 40))), False, False))
    nodes = (NodeConfig(top, True, True, draw(st.integers(0, 1))),
             NodeConfig(top, True, True, 0), *lower)
    fmax = {"pghot-v6-default": 3, "pghot-v6-precise": 7, "pghot-v3": 7}.get(variant, 2)
    return TierConfig(
        variant=variant, nodes=nodes, placement=tuple(placement), page_shift=20,
        promote_rate_limit_MBps=draw(st.sampled_from((1, 2, 65536))),
        enough_floor_pages=draw(st.sampled_from((0, 2, 100))),
        freq_window_ms=draw(st.sampled_from((None, 100, 3000))),
        freq_threshold=draw(st.integers(1, min(fmax, 3))),
        pghot_target_nid=draw(st.integers(0, 1)), pages_per_section=8, kmigrated_batch_nr=2,
        hot_threshold_ms=draw(st.sampled_from((1000, 200))),
        scan_period_max_ms=draw(st.sampled_from((60000, 2000))),
        kpromoted_as_posted=draw(st.booleans()),
        chmu_counters=4, chmu_hotlist=3, chmu_downsample=draw(st.integers(0, 1)),
        chmu_epoch_mode=draw(st.booleans()), chmu_counter_bits=draw(st.sampled_from((2, 16))),
        chmu_unit_order=draw(st.integers(0, 1)))


class TierLockstep(RuleBasedStateMachine):
    impl_factory: ImplFactory = TierMachine
    first_failure_at: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.state: TierState | None = None
        self.impl: Any = None
        self.now = 0

    def _fail(self, message: str) -> None:
        if type(self).first_failure_at is None:
            type(self).first_failure_at = time.monotonic()
        raise AssertionError(message)

    @initialize(cfg=tier_configs())
    def init_machine(self, cfg: TierConfig) -> None:
        self.state = T.initial_state(cfg)
        self.impl = type(self).impl_factory(cfg)

    def _step(self, name: str, spec_call: Callable[[TierState], tuple[TierState, Any]],
              impl_call: Callable[[], Any], prop: bool = True) -> None:
        assert self.state is not None
        before = self.state
        try:
            after, want = spec_call(before)
        except TierError as e:
            after, want = before, ("TierError", str(e))
        try:
            got = impl_call()
        except TierError as e:
            got = ("TierError", str(e))
        if want != got:
            self._fail(f"{name}: spec returned {want!r}, implementation {got!r}")
        self.state = after
        if prop and isinstance(want, list):
            for pfn, target, reason in want:
                why = T.promotion_test(before, pfn, target, reason, self.now)
                if why:
                    self._fail(f"TIER-PROP-001: {name} promoted page {pfn} to {target}: {why}")

    @rule(dt=st.sampled_from(TIME_STEPS))
    def tick(self, dt: int) -> None:
        self.now += dt

    @precondition(lambda self: self.state is not None)
    @rule(pfn=st.integers(0, NR_PAGES - 1), nid=st.sampled_from((0, 1, 2, NUMA_NO_NODE)),
          k=st.integers(0, 3))
    def record_access(self, pfn: int, nid: int, k: int) -> None:
        assert self.state is not None
        srcs = self.state.config.sources()
        src = srcs[k % len(srcs)]
        now = self.now
        self._step(f"record_access({pfn}, {nid}, {src}, {now})",
                   lambda s: T.record_access(s, pfn, nid, src, now),
                   lambda: self.impl.record_access(pfn, nid, src, now))

    @precondition(lambda self: self.state is not None)
    @rule(events=st.lists(st.tuples(st.integers(0, NR_PAGES - 1),
                                    st.sampled_from((0, 1, 2, NUMA_NO_NODE)),
                                    st.sampled_from(TIME_STEPS)), min_size=1, max_size=12),
          k=st.integers(0, 3))
    def access_batch(self, events: list[tuple[int, int, int]], k: int) -> None:
        """Many accesses from one source at once: the reference's vectorised paths."""
        assert self.state is not None
        srcs = self.state.config.sources()
        src = srcs[k % len(srcs)]
        pfns, nids, times = [], [], []
        for pfn, nid, dt in events:
            self.now += dt
            pfns.append(pfn)
            nids.append(nid)
            times.append(self.now)

        bad: list[str] = []

        def spec_call(s: TierState) -> tuple[TierState, Any]:
            out: list[Any] = []
            for pfn, nid, now in zip(pfns, nids, times, strict=True):
                before = s
                s, r = T.record_access(s, pfn, nid, src, now)
                if isinstance(r, list):
                    out += r
                    bad.extend(T.promotion_test(before, o[0], o[1], o[2], now) for o in r)
            return s, out if s.config.variant == "numab2" else None

        self._step(f"access_batch({pfns}, {nids}, {src}, {times})", spec_call,
                   lambda: self.impl.access_batch(pfns, nids, src, times), prop=False)
        if any(bad):
            self._fail(f"TIER-PROP-001: access_batch: {[b for b in bad if b]}")

    @precondition(lambda self: self.state is not None)
    @rule(pfn=st.integers(0, NR_PAGES - 1), nid=st.sampled_from((0, 1, 2, NUMA_NO_NODE)),
          n=st.integers(2, 12), dt=st.sampled_from((0, 1, 7, 127)), k=st.integers(0, 3))
    def access_burst(self, pfn: int, nid: int, n: int, dt: int, k: int) -> None:
        """One page accessed ``n`` times in quick succession from one node: frequencies reach
        their maximum (v2's wrap at 8, saturated CHMU counters), which uniformly drawn pages
        rarely do."""
        self.access_batch([(pfn, nid, dt)] * n, k)

    @precondition(lambda self: self.state is not None
                  and self.state.config.variant == "numab2")
    @rule(pfns=st.lists(st.integers(0, NR_PAGES - 1), max_size=8))
    def numa_scan(self, pfns: list[int]) -> None:
        now = self.now
        self._step(f"numa_scan({pfns}, {now})", lambda s: T.numa_scan(s, pfns, now),
                   lambda: self.impl.numa_scan(pfns, now))

    @precondition(lambda self: self.state is not None)
    @rule(k=st.integers(0, 3))
    def promote_pass(self, k: int) -> None:
        assert self.state is not None
        nid, now = k % len(self.state.config.nodes), self.now
        self._step(f"promote_pass({nid}, {now})", lambda s: T.promote_pass(s, nid, now),
                   lambda: self.impl.promote_pass(nid, now))

    @precondition(lambda self: self.state is not None)
    @rule(pfn=st.integers(0, NR_PAGES - 1))
    def demote(self, pfn: int) -> None:
        self._step(f"demote({pfn})", lambda s: T.demote(s, pfn), lambda: self.impl.demote(pfn))

    @invariant()
    def lockstep(self) -> None:
        if self.state is None:
            return
        got = self.impl.abstract()
        if got != self.state:
            diffs = [f"{f.name}: spec {getattr(self.state, f.name)!r} != implementation "
                     f"{getattr(got, f.name)!r}" for f in attrs.fields(TierState)
                     if getattr(got, f.name) != getattr(self.state, f.name)]
            self._fail("implementation state differs from the spec: " + "; ".join(diffs))
        bad = T.check_invariants(self.state)
        if bad:
            self._fail(f"spec state violates {bad[:3]}")
        bad = T.check_invariants(got)
        if bad:
            self._fail(f"implementation state violates {bad[:3]}")


# --- seeded bugs -------------------------------------------------------------------------------

class CountsTopTier(TierMachine):
    """Breaks TIER-OP-001/TIER-OP-011/TIER-INV-004: records accesses to top-tier pages too."""

    def _tracked(self, nodes: Any) -> Any:
        return self.toptier[nodes] | ~self.toptier[nodes]


class IgnoresWindow(TierMachine):
    """Breaks TIER-POL-001/TIER-OP-010: the window never restarts (frequency keeps growing)."""

    def __init__(self, config: TierConfig) -> None:
        super().__init__(config)
        self.window_ms = 1 << 40
        self.window_j = 1 << 62


class ExceedsRateLimit(TierMachine):
    """Breaks TIER-POL-021/TIER-INV-003: lets one candidate more through per slot."""

    def _throttle(self, dst: int, now: int, ref_th: int, period: int, latency: int
                  ) -> tuple[bool, str]:
        ok, why = super()._throttle(dst, now, ref_th, period, latency)
        p = self.pgdat[dst]
        rate = self.config.promote_rate_limit_MBps << (20 - self.config.page_shift)
        if why == "throttled" and p["pgpromote_candidate"] - p["nbp_rl_nr_cand"] == rate:
            return True, "ok"
        return ok, why


MUTANTS: dict[str, type[TierMachine]] = {
    "counts-toptier": CountsTopTier,
    "ignores-window": IgnoresWindow,
    "exceeds-rate-limit": ExceedsRateLimit,
}


def resolve_impl(name: str) -> ImplFactory:
    if name == "reference":
        return TierMachine
    if name == "spec":
        return SpecTierAdapter
    if name.startswith("mutant:"):
        key = name.split(":", 1)[1]
        if key not in MUTANTS:
            raise ValueError(f"unknown tier mutant {key!r}; known: {', '.join(sorted(MUTANTS))}")
        return MUTANTS[key]
    raise ValueError(f"unknown implementation {name!r} (reference, spec, mutant:NAME)")


class SpecTierAdapter:
    """The spec behind the implementation interface (the fuzzer's self-check)."""

    def __init__(self, config: TierConfig) -> None:
        self.s = T.initial_state(config)

    def _do(self, f: Callable[..., tuple[TierState, Any]], *args: Any) -> Any:
        self.s, out = f(self.s, *args)
        return out

    def record_access(self, pfn: int, nid: int, src: int, now: int) -> Any:
        return self._do(T.record_access, pfn, nid, src, now)

    def numa_scan(self, pfns: list[int], now: int) -> Any:
        return self._do(T.numa_scan, pfns, now)

    def access_batch(self, pfns: list[int], nids: list[int], src: int, times: list[int]
                     ) -> Any:
        out: list[Any] = []
        for pfn, nid, now in zip(pfns, nids, times, strict=True):
            r = self._do(T.record_access, pfn, nid, src, now)
            if isinstance(r, list):
                out += r
        return out if self.s.config.variant == "numab2" else None

    def promote_pass(self, nid: int, now: int) -> Any:
        return self._do(T.promote_pass, nid, now)

    def demote(self, pfn: int) -> Any:
        return self._do(T.demote, pfn)

    def abstract(self) -> TierState:
        return self.s


def machine_for(impl: ImplFactory) -> type[TierLockstep]:
    return type(f"TierLockstep_{getattr(impl, '__name__', 'impl')}", (TierLockstep,),
                {"impl_factory": staticmethod(impl)})


def machine_for_name(name: str) -> type[RuleBasedStateMachine]:
    return machine_for(resolve_impl(name))
