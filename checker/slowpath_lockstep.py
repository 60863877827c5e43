"""Lockstep fuzzing of the slow path, reclaim, compaction, kswapd and kcompactd.

A Hypothesis state machine drives the spec (``spec.slowpath`` on a ``spec.vmscan.Memory``)
and an implementation (the reference ``reference.vmscan.Memory`` or a mutant) with the same
allocations of every kind and GFP class, frees, kswapd and kcompactd runs, and compares the
outcome of every step, the whole state (zone, contents, daemons' pending orders) and the
vmstat counters after it. ``mmspec fuzz slowpath --impl reference|mutant:NAME``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import spec.constants as C
from spec.compaction import kcompactd_do_work, try_to_compact_pages
from spec.invariants import check_invariants
from spec.page_alloc import init_zone
from spec.rules import VARIANTS, alloc_has
from spec.slowpath import Frame, alloc_page, should_compact_retry
from spec.vmscan import (
    KINDS,
    Memory,
    MemWork,
    Page,
    balance_pgdat,
    free_page,
    memory_consistent,
)
from spec.zone import SpecError, ZoneConfig

#: (label, gfp, kind) of the requests the machine makes
REQUESTS = (
    ("GFP_KERNEL", C.GFP_KERNEL, "kernel"),
    ("GFP_ATOMIC", C.GFP_ATOMIC, "kernel"),
    ("GFP_NOWAIT", C.GFP_NOWAIT, "kernel"),
    ("GFP_KERNEL|__GFP_RECLAIMABLE", C.GFP_KERNEL | C.__GFP_RECLAIMABLE, "slab"),
    ("GFP_HIGHUSER_MOVABLE", C.GFP_HIGHUSER_MOVABLE, "anon"),
    ("GFP_HIGHUSER_MOVABLE", C.GFP_HIGHUSER_MOVABLE, "file"),
    ("GFP_TRANSHUGE", C.GFP_TRANSHUGE, "anon"),
    ("GFP_TRANSHUGE_LIGHT", C.GFP_TRANSHUGE_LIGHT, "anon"),
    ("GFP_KERNEL|__GFP_NORETRY", C.GFP_KERNEL | C.__GFP_NORETRY, "kernel"),
    ("GFP_KERNEL|__GFP_RETRY_MAYFAIL", C.GFP_KERNEL | C.__GFP_RETRY_MAYFAIL, "kernel"),
)
assert {k for _, _, k in REQUESTS} == set(KINDS)


@st.composite
def memory_configs(draw: st.DrawFn) -> tuple[ZoneConfig, bool]:
    pbo = draw(st.integers(1, 3))
    variant = draw(st.sampled_from(VARIANTS))
    cfg = ZoneConfig(
        nr_pageblocks=draw(st.integers(6, 10)), max_page_order=pbo + draw(st.integers(0, 1)),
        pageblock_order=pbo, nr_cpus=draw(st.integers(1, 2)), thp=draw(st.booleans()),
        min_free_kbytes=draw(st.sampled_from((0, 4, 8))),
        watermark_boost_factor=draw(st.sampled_from((0, 15000))),
        defrag_mode=draw(st.integers(0, 1)) if alloc_has(variant, "defrag_mode") else 0,
        variant=variant)
    return cfg, draw(st.booleans())


def spec_memory_of(impl_state: dict[str, Any]) -> Memory:
    """The abstraction function: the implementation's plain data as a spec Memory."""
    return Memory(impl_state["zone"], tuple(Page(*p) for p in impl_state["pages"]),
                  impl_state["clock"], impl_state["swap"], impl_state["kswapd_order"],
                  impl_state["kcompactd_order"], impl_state["vmstat"])


ImplFactory = Callable[[ZoneConfig, bool], Any]


class SlowpathLockstep(RuleBasedStateMachine):
    impl_factory: ImplFactory
    first_failure_at: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.m: Memory | None = None
        self.impl: Any = None
        self.dead = False

    def _fail(self, message: str) -> None:
        if type(self).first_failure_at is None:
            type(self).first_failure_at = time.monotonic()
        raise AssertionError(message)

    @initialize(cs=memory_configs())
    def init(self, cs: tuple[ZoneConfig, bool]) -> None:
        cfg, swap = cs
        self.m = Memory(init_zone(cfg), swap=swap)
        self.impl = type(self).impl_factory(cfg, swap)

    def _step(self, name: str, spec_op: Callable[[MemWork], Any],
              impl_op: Callable[[], Any]) -> None:
        assert self.m is not None
        if self.dead:
            return
        mw = MemWork(self.m)
        try:
            want: Any = spec_op(mw)
        except SpecError:
            want = "SpecError"
        try:
            got: Any = impl_op()
        except SpecError:
            got = "SpecError"
        if want != got:
            self._fail(f"{name}: spec {want!r}, implementation {got!r}")
        if want == "SpecError":
            self.dead = True  # both refused (a livelock): the run ends here
            return
        self.m = mw.freeze()

    @precondition(lambda self: self.m is not None and not self.dead)
    @rule(req=st.sampled_from(REQUESTS), order=st.integers(0, 3), cpu=st.integers(0, 1))
    def alloc(self, req: tuple[str, int, str], order: int, cpu: int) -> None:
        assert self.m is not None
        label, gfp, kind = req
        cpu %= self.m.zone.config.nr_cpus
        if gfp in (C.GFP_TRANSHUGE, C.GFP_TRANSHUGE_LIGHT):
            order = self.m.zone.config.pageblock_order

        def spec_op(mw: MemWork) -> tuple[str, int | None]:
            f = alloc_page(mw, gfp, order, kind, cpu)
            return f.outcome, f.page

        self._step(f"alloc_pages({label}, {order}) [{kind}]", spec_op,
                   lambda: self.impl.alloc_page(gfp, order, kind, cpu))

    @precondition(lambda self: self.m is not None and not self.dead)
    @rule(n=st.integers(4, 24))
    def fragment(self, n: int) -> None:
        """``n`` anonymous pages, then every other one freed: holes for compaction."""
        got: list[int] = []
        for _ in range(n):
            before = self.m
            self.alloc(("GFP_HIGHUSER_MOVABLE", C.GFP_HIGHUSER_MOVABLE, "anon"), 0, 0)
            now = self.m
            if self.dead or now is None or before is None or now is before:
                return
            new = {p.pfn for p in now.pages} - {p.pfn for p in before.pages}
            got.extend(sorted(new))
        for pfn in got[::2]:
            if self.dead or self.m is None or pfn not in {p.pfn for p in self.m.pages}:
                continue
            self._free(pfn, 0)

    def _free(self, pfn: int, cpu: int) -> None:
        def spec_op(mw: MemWork) -> None:
            free_page(mw, pfn, cpu)

        self._step(f"free_pages(pfn {pfn})", spec_op, lambda: self.impl.free_page(pfn, cpu))

    @precondition(lambda self: self.m is not None and not self.dead and bool(self.m.pages))
    @rule(i=st.integers(0, 1 << 16), cpu=st.integers(0, 1))
    def free(self, i: int, cpu: int) -> None:
        assert self.m is not None
        self._free(self.m.pages[i % len(self.m.pages)].pfn, cpu % self.m.zone.config.nr_cpus)

    @precondition(lambda self: self.m is not None and not self.dead)
    @rule(order=st.integers(1, 3), mt=st.sampled_from((C.MIGRATE_MOVABLE, C.MIGRATE_UNMOVABLE)),
          prio=st.integers(0, 2))
    def direct_compact(self, order: int, mt: int, prio: int) -> None:
        assert self.m is not None
        order = min(order, self.m.zone.config.max_page_order)
        self._step(f"try_to_compact_pages(order {order}, mt {mt}, prio {prio})",
                   lambda mw: try_to_compact_pages(mw, order, mt, C.ALLOC_WMARK_MIN, prio),
                   lambda: self.impl.compact(order, mt, prio))

    @precondition(lambda self: self.m is not None and not self.dead)
    @rule(order=st.integers(0, 4), result=st.sampled_from(
        ("COMPACT_SKIPPED", "COMPACT_SUCCESS", "COMPACT_COMPLETE")),
        retries=st.integers(0, 17), prio=st.integers(0, 2))
    def compact_retry_decision(self, order: int, result: str, retries: int,
                               prio: int) -> None:
        """``should_compact_retry`` on the current state: a pure decision, compared."""
        assert self.m is not None
        f = Frame(C.GFP_KERNEL, order, compact_result=result, compaction_retries=retries,
                  compact_priority=prio)
        want = should_compact_retry(MemWork(self.m), f, C.ALLOC_WMARK_MIN)
        got = self.impl._should_compact_retry(order, result, retries, prio)
        if tuple(want) != tuple(got):
            self._fail(f"should_compact_retry(order {order}, {result}, retries {retries}, "
                       f"prio {prio}): spec {want}, implementation {got}")

    @precondition(lambda self: self.m is not None)
    @rule()
    def kswapd(self) -> None:
        self._step("kswapd", balance_pgdat, lambda: self.impl.balance_pgdat())

    @precondition(lambda self: self.m is not None and not self.dead)
    @rule()
    def kcompactd(self) -> None:
        self._step("kcompactd", kcompactd_do_work, lambda: self.impl.kcompactd())

    @invariant()
    def same_state(self) -> None:
        if self.m is None or self.dead:
            return
        got = spec_memory_of(self.impl.abstract())
        if got != self.m:
            diffs = [f for f in ("pages", "clock", "kswapd_order", "kcompactd_order")
                     if getattr(got, f) != getattr(self.m, f)]
            if got.zone != self.m.zone:
                from checker.adapter import diff_zones
                diffs += diff_zones(self.m.zone, got.zone)[:4]
            self._fail("implementation state differs from the spec: " + "; ".join(diffs))
        if dict(got.vmstat) != dict(self.m.vmstat):
            self._fail(f"vmstat differs: spec {dict(self.m.vmstat)}, "
                       f"implementation {dict(got.vmstat)}")
        bad = check_invariants(self.m.zone) + [("ALLOC-INV-050", v)
                                                for v in memory_consistent(self.m)]
        if bad:
            self._fail(f"spec state violates {bad[:3]}")


def reference_factory(cfg: ZoneConfig, swap: bool) -> Any:
    from reference.vmscan import Memory as ReferenceMemory
    return ReferenceMemory(cfg, swap)


def machine_for_impl(impl: str) -> type[RuleBasedStateMachine]:
    """``reference`` or ``mutant:NAME`` (checker.mutants.SLOWPATH_MUTANTS)."""
    if impl == "reference":
        factory: ImplFactory = reference_factory
    elif impl.startswith("mutant:"):
        from checker.mutants import SLOWPATH_MUTANTS
        key = impl.split(":", 1)[1]
        if key not in SLOWPATH_MUTANTS:
            raise ValueError(f"unknown slowpath mutant {key!r}; known: "
                             f"{', '.join(sorted(SLOWPATH_MUTANTS))}")
        factory = SLOWPATH_MUTANTS[key]
    else:
        raise ValueError(f"unknown implementation {impl!r} for slowpath (reference, "
                         "mutant:NAME)")
    return type(f"SlowpathLockstep_{impl.replace(':', '_')}", (SlowpathLockstep,),
                {"impl_factory": staticmethod(factory)})


__all__ = ["SlowpathLockstep", "machine_for_impl", "spec_memory_of", "REQUESTS"]
