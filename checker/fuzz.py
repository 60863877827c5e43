"""Lockstep fuzzing: the spec and an implementation driven by the same operations.

One Hypothesis ``RuleBasedStateMachine`` draws a small zone in ``@initialize`` and then
allocations (random GFP mask, order and CPU), frees of live blocks (``consumes``), drains,
knob changes, pageblock isolation, highatomic unreserves and explicit-flag freelist attempts.
After every step it compares results and the implementation's abstraction with the spec's
state, runs every state invariant on both, and checks the step properties.
"""

from __future__ import annotations

import importlib
import io
import time
from collections.abc import Callable
from typing import Any

import attrs
import hypothesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import spec.constants as C
from checker.adapter import AllocImplementation, SpecAdapter, diff_zones
from spec.invariants import check_invariants, nofragment_guarantee
from spec.zone import KNOB_RANGES, SpecError, ZoneConfig

ImplFactory = Callable[[ZoneConfig], AllocImplementation]

GFP_MASKS = tuple(C.Gfp(g) for g in (
    C.GFP_KERNEL, C.GFP_HIGHUSER_MOVABLE, C.GFP_ATOMIC, C.GFP_NOWAIT,
    C.GFP_KERNEL | C.__GFP_RECLAIMABLE, C.GFP_TRANSHUGE_LIGHT, C.GFP_TRANSHUGE,
    C.GFP_ATOMIC | C.__GFP_NOMEMALLOC, C.GFP_NOWAIT | C.__GFP_MOVABLE,
    C.GFP_KERNEL | C.__GFP_HIGH))

ALLOC_FLAG_BITS = (C.ALLOC_NO_WATERMARKS, C.ALLOC_OOM, C.ALLOC_NON_BLOCK, C.ALLOC_MIN_RESERVE,
                   C.ALLOC_CMA, C.ALLOC_NOFRAGMENT, C.ALLOC_HIGHATOMIC, C.ALLOC_KSWAPD)

KNOB_VALUES: dict[str, tuple[int, ...]] = {
    "min_free_kbytes": (0, 4, 8, 16, 64, 128),
    "watermark_scale_factor": (1, 10, 100, 1000, 3000),
    "watermark_boost_factor": (0, 15000, 100),
    "defrag_mode": (0, 1),
    "percpu_pagelist_high_fraction": (0, 8, 64),
}
assert set(KNOB_VALUES) == set(KNOB_RANGES)


@st.composite
def zone_configs(draw: st.DrawFn) -> ZoneConfig:
    """Small zones: enough pageblocks to exercise grouping, few enough to shrink well."""
    max_order = draw(st.integers(2, 4))
    # pageblock_order == max_page_order often: boot frees then never merge across pageblocks,
    # so mixed configured types survive and every fallback path gets exercised.
    pb_order = draw(st.one_of(st.just(max_order), st.integers(1, max_order)))
    nr_pageblocks = draw(st.integers(1, 12))
    if pb_order <= 2 and draw(st.integers(0, 7)) == 0:
        # one zone in eight (of small pageblocks) large enough for a highatomic reserve:
        # reserve_highatomic_pageblock does nothing below managed/100 >= pageblock_nr_pages
        nr_pageblocks = draw(st.integers(100, 128))
    types = draw(st.one_of(
        st.none(),
        st.lists(st.sampled_from((0, 1, 2, 1, 1, C.MIGRATE_HIGHATOMIC, C.MIGRATE_CMA)),
                 min_size=nr_pageblocks, max_size=nr_pageblocks).map(tuple)))
    return ZoneConfig(
        nr_pageblocks=nr_pageblocks, max_page_order=max_order, pageblock_order=pb_order,
        nr_cpus=draw(st.integers(1, 2)),
        zone_start_pfn=draw(st.sampled_from((0, 1 << max_order, 4 << max_order))),
        pageblock_types=types, thp=draw(st.booleans()),
        zone_is_normal_with_dma32=draw(st.booleans()),
        min_free_kbytes=draw(st.sampled_from((0, 4, 8, 16))),
        watermark_scale_factor=draw(st.sampled_from((1, 10, 1000))),
        watermark_boost_factor=draw(st.sampled_from((0, 15000))),
        defrag_mode=draw(st.integers(0, 1)),
        percpu_pagelist_high_fraction=draw(st.sampled_from((0, 0, 8))),
        pcp_free_high_batch=draw(st.booleans()),
        variant=draw(st.sampled_from(("v6.18", "v6.15"))),
    )


class AllocLockstep(RuleBasedStateMachine):
    """Spec and implementation in lockstep; ``impl_factory`` is set by :func:`machine_for`."""

    impl_factory: ImplFactory = SpecAdapter
    blocks = Bundle("blocks")
    #: monotonic time of the first failed check (shrinking comes after it).
    first_failure_at: float | None = None

    def _fail(self, message: str) -> None:
        if type(self).first_failure_at is None:
            type(self).first_failure_at = time.monotonic()
        raise AssertionError(message)

    def __init__(self) -> None:
        super().__init__()
        self.model: SpecAdapter | None = None
        self.impl: Any = None

    @initialize(cfg=zone_configs())
    def init_zone(self, cfg: ZoneConfig) -> None:
        self.model = SpecAdapter(cfg)
        self.impl = type(self).impl_factory(cfg)

    def _both(self, name: str, *args: Any) -> Any:
        """Run one operation on both sides; errors must agree too."""
        assert self.model is not None
        try:
            want: Any = getattr(self.model, name)(*args)
        except SpecError as e:
            want = ("SpecError", str(e))
        try:
            got: Any = getattr(self.impl, name)(*args)
        except SpecError as e:
            got = ("SpecError", str(e))
        if type(want) is not type(got) or (want != got and not isinstance(want, tuple)):
            self._fail(f"{name}{args}: spec returned {want!r}, implementation {got!r}")
        return want

    def _cpu(self, cpu: int) -> int:
        assert self.model is not None
        return cpu % self.model.zone.config.nr_cpus

    @rule(target=blocks, gfp=st.sampled_from(GFP_MASKS), order=st.integers(0, 5),
          cpu=st.integers(0, 1))
    def alloc_pages(self, gfp: int, order: int, cpu: int) -> Any:
        assert self.model is not None
        before = self.model.zone
        page = self._both("alloc_pages", gfp, order, self._cpu(cpu))
        bad = nofragment_guarantee(before, self.model.zone, gfp)
        if bad:
            self._fail(f"ALLOC-PROP-001: {bad}")
        return multiple() if page is None else multiple((page, order))

    @rule(target=blocks, gfp=st.sampled_from(GFP_MASKS), order=st.integers(0, 4),
          wmark=st.integers(0, 2), bits=st.sets(st.sampled_from(ALLOC_FLAG_BITS), max_size=3),
          cpu=st.integers(0, 1))
    def get_page_from_freelist(self, gfp: int, order: int, wmark: int, bits: set[int],
                               cpu: int) -> Any:
        flags = wmark
        for b in bits:
            flags |= b
        page = self._both("get_page_from_freelist", gfp, order, flags, self._cpu(cpu))
        return multiple() if page is None else multiple((page, order))

    @rule(block=consumes(blocks), cpu=st.integers(0, 1))
    def free_pages(self, block: tuple[int, int], cpu: int) -> None:
        self._both("free_pages", block[0], block[1], self._cpu(cpu))

    @rule(cpu=st.integers(0, 1))
    def drain_pages(self, cpu: int) -> None:
        self._both("drain_pages", self._cpu(cpu))

    @rule(data=st.data(), name=st.sampled_from(sorted(KNOB_VALUES)))
    def set_knob(self, data: st.DataObject, name: str) -> None:
        self._both("set_knob", name, data.draw(st.sampled_from(KNOB_VALUES[name])))

    @precondition(lambda self: self.model is not None)
    @rule(pageblock=st.integers(0, 11))
    def isolate_pageblock(self, pageblock: int) -> None:
        assert self.model is not None
        self._both("isolate_pageblock", pageblock % self.model.zone.config.nr_pageblocks)

    @precondition(lambda self: self.model is not None)
    @rule(pageblock=st.integers(0, 11))
    def unisolate_pageblock(self, pageblock: int) -> None:
        assert self.model is not None
        self._both("unisolate_pageblock", pageblock % self.model.zone.config.nr_pageblocks)

    @rule(mt=st.integers(0, 2), force=st.booleans())
    def unreserve_highatomic_pageblock(self, mt: int, force: bool) -> None:
        self._both("unreserve_highatomic_pageblock", mt, force)

    @invariant()
    def lockstep(self) -> None:
        if self.model is None:
            return
        want = self.model.zone
        got = self.impl.abstract()
        if got != want:
            self._fail("implementation state differs from the spec: "
                       + "; ".join(diff_zones(want, got)))
        violations = check_invariants(want)
        if violations:
            self._fail(f"spec state violates {violations[:3]}")


def machine_for(impl_factory: ImplFactory) -> type[AllocLockstep]:
    """A lockstep machine class for one implementation."""
    return type(f"AllocLockstep_{getattr(impl_factory, '__name__', 'impl')}", (AllocLockstep,),
                {"impl_factory": staticmethod(impl_factory)})


def resolve_named(name: str, reference: Callable[[], Any], spec: Any,
                  mutants: Callable[[], dict[str, Any]], area: str = "") -> Any:
    """The implementation a lockstep area's ``--impl`` names: ``reference``, ``spec``,
    ``mutant:NAME`` (from ``mutants()``) or ``package.module:Class``. ``reference`` and
    ``mutants`` are called only when named, so a broken reference does not stop ``spec``."""
    if name == "spec":
        return spec
    if name == "reference":
        return reference()
    label = f"{area} mutant" if area else "mutant"
    if name.startswith("mutant:"):
        known = mutants()
        key = name.split(":", 1)[1]
        if key not in known:
            raise ValueError(f"unknown {label} {key!r}; known: {', '.join(sorted(known))}")
        return known[key]
    if ":" in name:
        mod, _, cls = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load implementation {name!r}: {e}") from None
    raise ValueError(f"unknown implementation {name!r} (reference, spec, mutant:NAME, mod:Class)")


def resolve_impl(name: str) -> ImplFactory:
    """``reference``, ``spec``, ``mutant:NAME``, or ``package.module:Class``."""
    def reference() -> ImplFactory:
        from reference import Zone as ReferenceZone
        return ReferenceZone

    def mutants() -> dict[str, Any]:
        from checker.mutants import MUTANTS
        return MUTANTS

    return resolve_named(name, reference, SpecAdapter, mutants)  # type: ignore[no-any-return]


@attrs.define
class FuzzResult:
    implementation: str
    examples: int
    seconds: float
    failure: str | None = None
    program: str | None = None
    #: seconds from the start to the first failed check (before shrinking).
    detected_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"implementation": self.implementation, "examples": self.examples,
                "seconds": round(self.seconds, 2), "ok": self.failure is None,
                "detected_after": None if self.detected_after is None
                else round(self.detected_after, 2),
                "failure": self.failure, "program": self.program}


def _first_failure(e: BaseException) -> BaseException:
    """Hypothesis reports several distinct failures as an ExceptionGroup; show the first."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


#: Lockstep areas for ``mmspec fuzz AREA``: name -> function from an implementation name
#: (``reference``, ``spec``, ``mutant:NAME``, ``package.module:Class``) to the state-machine
#: class that drives it. Other areas register theirs with :func:`register_area` from their
#: ``checker.commands`` module. A machine may set the class attribute ``first_failure_at``
#: (``time.monotonic()``) when it first fails, for ``detected_after``.
AREAS: dict[str, Callable[[str], type[RuleBasedStateMachine]]] = {}


def register_area(name: str, machine_for_impl: Callable[[str], type[RuleBasedStateMachine]]
                  ) -> None:
    AREAS[name] = machine_for_impl


register_area("alloc", lambda impl: machine_for(resolve_impl(impl)))


def run_fuzz(impl: str, seconds: float | None = None, examples: int | None = None,
             seed: int = 0, steps: int = 30, batch: int = 25,
             shrink_seconds: float = 30.0,
             tick: Callable[[int], None] | None = None, area: str = "alloc",
             database: Any = None, stop: Callable[[], bool] | None = None) -> FuzzResult:
    """Run the lockstep machine of ``area`` until ``seconds`` pass or ``examples`` have run.

    Each batch runs with seed ``seed + i`` so a time-bounded run keeps discovering; the first
    failure stops the run and its shrunk program is returned. ``seconds`` bounds the search;
    shrinking a failure, once found, may take longer (``detected_after`` says when it was
    found). ``database`` is a Hypothesis example database (see :func:`open_database`): a
    failure is saved there, and saved failures are replayed first. ``stop()`` true ends the
    run between batches. Raises ``ValueError`` for an unknown area or implementation.
    """
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r} (known: {', '.join(sorted(AREAS))})")
    machine = AREAS[area](impl)
    machine.first_failure_at = None  # type: ignore[attr-defined]
    # Hypothesis stops shrinking after MAX_SHRINKING_SECONDS (300 by default); a fuzzing run
    # wants its counterexample sooner. The shrunk program is still a valid reproduction.
    saved_limit = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = int(max(1, shrink_seconds))
    try:
        return _run_batches(impl, machine, seconds, examples, seed, steps, batch, tick,
                            database, stop)
    finally:
        engine.MAX_SHRINKING_SECONDS = saved_limit


def _run_batches(impl: str, machine: type[RuleBasedStateMachine], seconds: float | None,
                 examples: int | None, seed: int, steps: int, batch: int,
                 tick: Callable[[int], None] | None, database: Any = None,
                 stop: Callable[[], bool] | None = None) -> FuzzResult:
    start = time.monotonic()
    done = 0
    i = 0
    if seconds is None and examples is None:
        examples = 200
    while True:
        n = batch if examples is None else min(batch, examples - done)
        if n <= 0 or (seconds is not None and time.monotonic() - start >= seconds):
            break
        if stop is not None and stop():
            break
        out = io.StringIO()

        def report(text: object, out: io.StringIO = out) -> None:
            print(text, file=out)

        seeded = hypothesis.seed(seed + i)(machine)
        i += 1
        try:
            with hypothesis.reporting.with_reporter(report):
                run_state_machine_as_test(seeded, settings=settings(
                    max_examples=n, stateful_step_count=steps, deadline=None,
                    database=database,
                    suppress_health_check=list(HealthCheck), print_blob=False))
        except Exception as group:  # the machine's assertion, with its shrunk program
            e = _first_failure(group)
            msg = str(e).strip().splitlines()
            notes = "\n".join(getattr(e, "__notes__", []))
            program = (out.getvalue() + "\n" + notes).strip()
            found = getattr(machine, "first_failure_at", None)
            return FuzzResult(impl, done + n, time.monotonic() - start,
                              failure=f"{type(e).__name__}: {msg[0] if msg else ''}",
                              program=program,
                              detected_after=None if found is None else found - start)
        done += n
        if tick:
            tick(n)
    return FuzzResult(impl, done, time.monotonic() - start)


# --- many workers, one example database ---------------------------------------------------------

def open_database(spec: str | None) -> Any:
    """A Hypothesis example database: a directory path, or ``redis://HOST:PORT[/DB]`` for
    Hypothesis's Redis database shared by workers on many machines. ``None`` means the
    directory Hypothesis itself uses by default (``.hypothesis/examples``), so that plain
    pytest in the same checkout replays what the workers found."""
    from hypothesis.database import DirectoryBasedExampleDatabase

    if spec is None:
        return DirectoryBasedExampleDatabase(".hypothesis/examples")
    if spec.startswith("redis://"):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as e:
            raise ValueError(f"--database {spec}: the redis package is not installed "
                             f"({e.name}); pip install redis") from None
        client = redis.Redis.from_url(spec, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.exceptions.RedisError as e:
            raise ValueError(f"--database {spec}: cannot reach the Redis server ({e})") from None
        return RedisExampleDatabase(client, key_prefix=b"mmspec-hypothesis")
    if "://" in spec:
        raise ValueError(f"--database {spec}: use a directory or redis://HOST:PORT")
    return DirectoryBasedExampleDatabase(spec)


def _worker(args: tuple[str, str, float, int, str | None, Any]) -> dict[str, Any]:
    area, impl, seconds, seed, database, stop_event = args
    result = run_fuzz(impl, seconds=seconds, seed=seed, shrink_seconds=30.0, area=area,
                      database=open_database(database), stop=stop_event.is_set)
    if result.failure is not None:
        stop_event.set()
    return {"seed": seed, **result.to_json()}


def run_workers(area: str, impl: str, workers: int, seconds: float, seed: int = 0,
                database: str | None = None) -> dict[str, Any]:
    """``workers`` processes fuzz ``area`` for ``seconds`` each, with different seeds, saving
    into one example database; the first failure stops the others at their next batch."""
    import multiprocessing as mp

    open_database(database)  # fail fast, in the parent, on a bad path or server
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        stop_event = manager.Event()
        jobs = [(area, impl, seconds, seed + 1_000_003 * k, database, stop_event)
                for k in range(workers)]
        with ctx.Pool(workers) as pool:
            results = pool.map(_worker, jobs)
    failures = [r for r in results if not r["ok"]]
    return {"area": area, "implementation": impl, "workers": workers,
            "database": database or ".hypothesis/examples",
            "examples": sum(r["examples"] for r in results), "ok": not failures,
            "failure": failures[0]["failure"] if failures else None,
            "program": failures[0]["program"] if failures else None,
            "per_worker": [{k: r[k] for k in ("seed", "examples", "seconds", "ok")}
                           for r in results]}
