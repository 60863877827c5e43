"""The reference implementation in lockstep with the spec.

Every test drives ``spec`` (functional, ``z, r = spec.op(z, ...)``) and ``reference.Zone``
(mutable) with the same seeded operations and requires, after **every** step, the same result
(or the same SpecError) and ``ref.abstract() == z``: the same free lists in the same order,
the same per-CPU lists and fields, counters, pageblock types and isolate bits, watermarks,
boost, zone flags and allocated set. The reference's abstraction also satisfies every
ALLOC-INV invariant along the way. A mismatch is reported field by field.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import spec
import spec.constants as C
from reference import Zone as ReferenceZone
from spec.invariants import check_invariants
from spec.zone import KNOB_RANGES, KNOBS, SpecError, Zone, ZoneConfig

M, U, R = C.MIGRATE_MOVABLE, C.MIGRATE_UNMOVABLE, C.MIGRATE_RECLAIMABLE
H, CMA = C.MIGRATE_HIGHATOMIC, C.MIGRATE_CMA

CONFIGS: dict[str, ZoneConfig] = {
    "tiny": ZoneConfig(max_page_order=3, pageblock_order=2, nr_pageblocks=8, nr_cpus=2,
                       min_free_kbytes=8),
    "mixed_types": ZoneConfig(max_page_order=5, pageblock_order=3, nr_pageblocks=16,
                              nr_cpus=3, zone_start_pfn=64, min_free_kbytes=16,
                              pageblock_types=(U, M, M, R, H, CMA, CMA, M,
                                               M, U, U, M, R, R, H, M)),
    "defrag_mode": ZoneConfig(max_page_order=4, pageblock_order=3, nr_pageblocks=12,
                              defrag_mode=1, min_free_kbytes=12,
                              pageblock_types=(M, M, U, M, R, M, M, M, U, M, M, M)),
    "high_fraction": ZoneConfig(max_page_order=4, pageblock_order=2, nr_pageblocks=24,
                                percpu_pagelist_high_fraction=8, min_free_kbytes=16),
    "v6.15": ZoneConfig(max_page_order=4, pageblock_order=2, nr_pageblocks=16, nr_cpus=2,
                        variant="v6.15", min_free_kbytes=8,
                        pageblock_types=(M, M, M, U, M, R, M, M, CMA, M, M, M, H, M, M, U)),
    # 1% of the zone is at least a pageblock: reserve_highatomic_pageblock can act.
    "highatomic_reserve": ZoneConfig(max_page_order=4, pageblock_order=2, nr_pageblocks=130,
                                     min_free_kbytes=40, watermark_boost_factor=30000,
                                     pageblock_types=(U, M, M, R, M, H, M, M, CMA, M) * 13),
    # Fewer than MIGRATE_TYPES pageblocks: mobility grouping is disabled.
    "mobility_disabled": ZoneConfig(max_page_order=3, pageblock_order=2, nr_pageblocks=4,
                                    pageblock_types=(U, M, R, M)),
    "other_shapes": ZoneConfig(max_page_order=4, pageblock_order=3, nr_pageblocks=10,
                               nr_cpus=2, thp=False, pcp_free_high_batch=True,
                               zone_is_normal_with_dma32=False, lowmem_reserve=3,
                               min_free_kbytes=8, watermark_boost_factor=0),
    "thp_order_below_pageblock": ZoneConfig(max_page_order=6, pageblock_order=5,
                                            hpage_pmd_order=4, nr_pageblocks=8,
                                            zone_start_pfn=64, min_free_kbytes=8),
    "kernel_orders": ZoneConfig(nr_pageblocks=24),
}

GFPS = (C.GFP_KERNEL, C.GFP_HIGHUSER_MOVABLE, C.GFP_ATOMIC, C.GFP_NOWAIT,
        C.GFP_KERNEL | C.__GFP_RECLAIMABLE, C.GFP_TRANSHUGE_LIGHT, C.GFP_TRANSHUGE,
        C.GFP_ATOMIC | C.__GFP_MOVABLE)
ALLOC_BITS = (C.ALLOC_NO_WATERMARKS, C.ALLOC_OOM, C.ALLOC_NON_BLOCK, C.ALLOC_MIN_RESERVE,
              C.ALLOC_CPUSET, C.ALLOC_CMA, C.ALLOC_NOFRAGMENT, C.ALLOC_HIGHATOMIC,
              C.ALLOC_KSWAPD)

Op = tuple[Any, ...]


# --- the field-by-field diff ------------------------------------------------------------------

def zone_diff(ref: Zone, want: Zone) -> list[str]:
    """Every field where the reference's abstraction ``ref`` differs from the spec's ``want``."""
    out = []
    for field in attrs.fields(Zone):
        a, b = getattr(ref, field.name), getattr(want, field.name)
        if a == b:
            continue
        if field.name == "free_area":
            out += [f"free_area[{o}][{mt}]: reference {x} spec {y}"
                    for o, (xs, ys) in enumerate(zip(a, b, strict=True))
                    for mt, (x, y) in enumerate(zip(xs, ys, strict=True)) if x != y]
        elif field.name == "pcp":
            for cpu, (p, q) in enumerate(zip(a, b, strict=True)):
                out += [f"pcp[{cpu}].{f.name}: reference {getattr(p, f.name)} spec "
                        f"{getattr(q, f.name)}"
                        for f in attrs.fields(type(p)) if getattr(p, f.name) != getattr(q, f.name)]
        elif field.name == "allocated":
            out.append(f"allocated: only in reference {sorted(a - b, key=lambda x: x.pfn)}, "
                       f"only in spec {sorted(b - a, key=lambda x: x.pfn)}")
        elif field.name == "config":
            out += [f"config.{f.name}: reference {getattr(a, f.name)} spec {getattr(b, f.name)}"
                    for f in attrs.fields(ZoneConfig) if getattr(a, f.name) != getattr(b, f.name)]
        else:
            out.append(f"{field.name}: reference {a} spec {b}")
    return out


def assert_same(ref: ReferenceZone, z: Zone, context: str) -> None:
    diff = zone_diff(ref.abstract(), z)
    assert not diff, f"{context}\n  " + "\n  ".join(diff)


# --- the operation generator ------------------------------------------------------------------

class Driver:
    """Seeded random operations, chosen from the spec's current state.

    The weights move through phases (mostly allocating, mostly freeing, mixed), so runs reach
    both a full zone (watermarks fail, fallbacks claim and steal, reserves are used) and an
    empty one (merging back to MAX_PAGE_ORDER).
    """

    def __init__(self, cfg: ZoneConfig, seed: int) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)

    def knob_value(self, name: str) -> int:
        rng = self.rng
        lo, hi = KNOB_RANGES[name]
        if name == "min_free_kbytes":
            return rng.choice([0, 4, 8, 16, 32, 64, rng.randint(0, 256)])
        if name == "watermark_scale_factor":
            return rng.choice([lo, 10, 100, rng.randint(lo, hi), hi])
        if name == "watermark_boost_factor":
            return rng.choice([0, 1, 15000, rng.randint(0, 40000)])
        if name == "percpu_pagelist_high_fraction":
            return rng.choice([0, 0, 1, 8, rng.randint(8, 1000)])
        return rng.randint(lo, hi)

    def invalid(self, z: Zone) -> Op:
        rng, cfg = self.rng, self.cfg
        allocated = {a.pfn: a.order for a in z.allocated}
        stray = next((p for p in range(cfg.zone_start_pfn, cfg.end_pfn) if p not in allocated),
                     cfg.end_pfn)
        choices: list[Op] = [
            ("alloc_pages", C.GFP_KERNEL, 0, cfg.nr_cpus),
            ("alloc_pages", C.GFP_KERNEL, -1, 0),
            ("alloc_pages", C.GFP_KERNEL, cfg.max_page_order + 1, 0),
            ("get_page_from_freelist", C.GFP_KERNEL, 0, 0, -1),
            ("get_page_from_freelist", C.GFP_KERNEL, cfg.max_page_order + 1, 0, 0),
            ("free_pages", stray, 0, 0),
            ("free_pages", cfg.end_pfn, 0, 0),
            ("free_pages", cfg.zone_start_pfn - 1, 0, 0),
            ("drain_pages", cfg.nr_cpus),
            ("isolate_pageblock", cfg.nr_pageblocks),
            ("unisolate_pageblock", -1),
            ("set_knob", "no_such_knob", 1),
            ("set_knob", "defrag_mode", 2),
            ("set_knob", "watermark_scale_factor", 0),
            ("unreserve_highatomic_pageblock", H, True),
        ]
        if z.allocated:
            a = rng.choice(sorted(z.allocated, key=lambda x: x.pfn))
            choices.append(("free_pages", a.pfn, a.order + 1, 0))
            choices.append(("free_pages", a.pfn, a.order, cfg.nr_cpus))
        return rng.choice(choices)

    def next_op(self, z: Zone, step: int) -> Op:
        rng, cfg = self.rng, self.cfg
        phase = (step // 250) % 3
        alloc_w, free_w = ((0.6, 0.15), (0.15, 0.6), (0.35, 0.35))[phase]
        k = rng.random()
        cpu = rng.randrange(cfg.nr_cpus)
        if k < 0.01:
            return self.invalid(z)
        k = (k - 0.01) / 0.99
        if k < alloc_w:
            order = rng.choice([0, 0, 0, 1, 2, 3, rng.randint(0, cfg.max_page_order)])
            return ("alloc_pages", rng.choice(GFPS), order, cpu)
        k -= alloc_w
        if k < free_w and z.allocated:
            a = rng.choice(sorted(z.allocated, key=lambda x: x.pfn))
            return ("free_pages", a.pfn, a.order, cpu)
        k = rng.random()
        if k < 0.25:
            flags = rng.randrange(4)
            for bit in ALLOC_BITS:
                if rng.random() < 0.3:
                    flags |= bit
            return ("get_page_from_freelist", rng.choice(GFPS),
                    rng.randint(0, cfg.max_page_order), flags, cpu)
        if k < 0.45:
            return ("drain_pages", cpu)
        if k < 0.55:
            return ("isolate_pageblock", rng.randrange(cfg.nr_pageblocks))
        if k < 0.7:
            isolated = [i for i, b in enumerate(z.pageblock_isolate) if b]
            pb = rng.choice(isolated) if isolated and rng.random() < 0.8 else \
                rng.randrange(cfg.nr_pageblocks)
            return ("unisolate_pageblock", pb)
        if k < 0.85:
            name = rng.choice(KNOBS)
            return ("set_knob", name, self.knob_value(name))
        return ("unreserve_highatomic_pageblock", rng.randrange(3), rng.random() < 0.5)


SPEC_OPS: dict[str, Callable[..., tuple[Zone, Any]]] = {
    name: getattr(spec, name) for name in (
        "alloc_pages", "get_page_from_freelist", "free_pages", "drain_pages", "set_knob",
        "isolate_pageblock", "unisolate_pageblock", "unreserve_highatomic_pageblock")}


def step_both(z: Zone, ref: ReferenceZone, op: Op, context: str) -> tuple[Zone, Any]:
    """Apply ``op`` to both; they must agree on the result or both raise SpecError."""
    name, *args = op
    try:
        z2, want = SPEC_OPS[name](z, *args)
        spec_error = None
    except SpecError as e:
        z2, want, spec_error = z, None, e
    try:
        got = getattr(ref, name)(*args)
        ref_error = None
    except SpecError as e:
        got, ref_error = None, e
    assert (spec_error is None) == (ref_error is None), (
        f"{context}: spec raised {spec_error!r}, reference raised {ref_error!r}")
    assert got == want, f"{context}: spec returned {want!r}, reference {got!r}"
    return z2, want


def run_lockstep(cfg: ZoneConfig, seed: int, steps: int) -> Counter[tuple[str, bool]]:
    """Run ``steps`` operations in lockstep; count (operation, truthy result) pairs."""
    z = spec.init_zone(cfg)
    ref = ReferenceZone(cfg)
    assert_same(ref, z, "after boot")
    driver = Driver(cfg, seed)
    outcomes: Counter[tuple[str, bool]] = Counter()
    for step in range(steps):
        op = driver.next_op(z, step)
        context = f"seed {seed} step {step}: {op}"
        z, result = step_both(z, ref, op, context)
        outcomes[op[0], result is not None and result is not False] += 1
        assert_same(ref, z, context)
        assert check_invariants(ref.abstract()) == [], context
    return outcomes


# --- the tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_lockstep_random_operations(name: str, seed: int) -> None:
    cfg = CONFIGS[name]
    steps = 600 if cfg.spanned_pages > 4096 else 2500
    outcomes = run_lockstep(cfg, seed, steps)
    # The run did something: allocations succeeded and failed, blocks were handed back.
    assert outcomes["alloc_pages", True] and outcomes["alloc_pages", False]
    assert outcomes["free_pages", False]


@pytest.mark.parametrize("name", ["tiny", "mixed_types", "highatomic_reserve"])
def test_lockstep_exhaustion_and_recovery(name: str) -> None:
    """Allocate until everything fails with every GFP mask, then free it all and drain."""
    cfg = CONFIGS[name]
    z = spec.init_zone(cfg)
    ref = ReferenceZone(cfg)
    rng = random.Random(7)
    failures = 0
    step = 0
    while failures < 60:
        op = ("alloc_pages", rng.choice(GFPS), rng.choice([0, 0, 1, 2, 3]),
              rng.randrange(cfg.nr_cpus))
        z, page = step_both(z, ref, op, f"fill step {step}: {op}")
        assert_same(ref, z, f"fill step {step}: {op}")
        failures += page is None
        step += 1
    for a in sorted(z.allocated, key=lambda x: (x.order, x.pfn)):
        op = ("free_pages", a.pfn, a.order, rng.randrange(cfg.nr_cpus))
        z, _ = step_both(z, ref, op, f"free {op}")
        assert_same(ref, z, f"free {op}")
    for cpu in range(cfg.nr_cpus):
        z, _ = step_both(z, ref, ("drain_pages", cpu), f"drain {cpu}")
        assert_same(ref, z, f"drain {cpu}")
    assert not z.allocated and all(p.count == 0 for p in z.pcp)
    assert check_invariants(ref.abstract()) == []


@pytest.mark.parametrize("log2_pages", [16, 20])
def test_large_zone_boot_matches_spec(log2_pages: int) -> None:
    cfg = ZoneConfig(nr_pageblocks=(1 << log2_pages) >> 9)
    ref = ReferenceZone(cfg)
    assert_same(ref, spec.init_zone(cfg), f"boot of 2^{log2_pages} pages")


def test_large_zone_churn_matches_spec() -> None:
    """The benchmark's workload, shortened: 2^20 pages, order 0-3 movable fill, then churn."""
    cfg = ZoneConfig(nr_pageblocks=2048)
    ref = ReferenceZone(cfg)
    rng = random.Random(3)
    live = []
    for _ in range(3000):
        order = rng.randrange(4)
        live.append((ref.alloc_pages(C.GFP_HIGHUSER_MOVABLE, order), order))
    z = ref.abstract()
    assert check_invariants(z) == []
    # From the reference's state (which the spec accepts as a value), continue in lockstep.
    for step in range(400):
        if step % 2 == 0:
            op: Op = ("alloc_pages", C.GFP_HIGHUSER_MOVABLE, 0, 0)
        else:
            pfn, order = live.pop(rng.randrange(len(live)))
            op = ("free_pages", pfn, order, 0)
        z, page = step_both(z, ref, op, f"churn step {step}: {op}")
        if page is not None:
            live.append((page, 0))
        if step % 50 == 0:
            assert_same(ref, z, f"churn step {step}")
    assert_same(ref, z, "end of churn")


def test_errors_leave_the_reference_unchanged() -> None:
    cfg = CONFIGS["mixed_types"]
    ref = ReferenceZone(cfg)
    pfn = ref.alloc_pages(C.GFP_KERNEL, 1)
    assert pfn is not None
    before = ref.abstract()
    for call in (lambda: ref.free_pages(pfn, 0), lambda: ref.free_pages(pfn + 1, 1),
                 lambda: ref.free_pages(pfn, 1, cpu=3), lambda: ref.alloc_pages(0, 0, cpu=-1),
                 lambda: ref.drain_pages(5), lambda: ref.isolate_pageblock(16),
                 lambda: ref.unisolate_pageblock(-1), lambda: ref.set_knob("swappiness", 60),
                 lambda: ref.set_knob("min_free_kbytes", -1),
                 lambda: ref.unreserve_highatomic_pageblock(CMA, True)):
        with pytest.raises(SpecError):
            call()
        assert ref.abstract() == before
    assert ref.alloc_pages(C.GFP_KERNEL, cfg.max_page_order + 1) is None
    assert ref.abstract() == before


def test_zone_diff_names_the_fields_that_differ() -> None:
    cfg = CONFIGS["tiny"]
    z = spec.init_zone(cfg)
    z2, _ = spec.alloc_pages(z, C.GFP_KERNEL, 0, 1)
    diff = zone_diff(z2, z)
    assert any(line.startswith("pcp[1].") for line in diff)
    assert any(line.startswith("allocated:") for line in diff)
    assert any(line.startswith("free_area[") for line in diff)
    assert zone_diff(z, z) == []


#: What each reference module may take from ``spec``: constants, configurations, state types
#: (the targets of ``abstract()``), errors and the variant-feature table; never an operation.
VOCABULARY = {
    "spec.constants": None, "spec.zone": None,   # ALLOC: every name (tables, configs, types)
    "spec.nolock": {"HARDIRQ", "NMI", "SOFTIRQ", "TASK", "NolockConfig", "NolockState"},
    "spec.tier_common": None, "spec.tier_state": None,  # TIER: constants and state types
    "spec.ksm": {"ZERO", "PAGE_SIZE", "RMAP_ITEM_SIZE", "MAX_PASSES", "KsmError", "new_state",
                 "_fingerprint"},
}


def test_reference_imports_spec_only_for_vocabulary() -> None:
    """DESIGN.md layering: ``reference`` takes types and constants from ``spec``, no behaviour.

    ``spec.ksm``'s ``new_state`` builds the (empty) state ``abstract()`` returns and
    ``_fingerprint`` is the content-label encoding both sides share; no KSM operation is used.
    """
    root = Path(__file__).resolve().parents[2] / "reference"
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "spec":  # from spec import ksm as S
                    for a in node.names:
                        aliases[a.asname or a.name] = f"spec.{a.name}"
                    continue
                if node.module.startswith("spec."):
                    assert node.module in VOCABULARY, f"{path.name} imports {node.module}"
                    names = VOCABULARY[node.module]
                    for a in node.names:
                        assert names is None or a.name in names, (path.name, node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("spec"):
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases):
                module = aliases[node.value.id]
                assert module in VOCABULARY, f"{path.name} uses {module}"
                names = VOCABULARY[module]
                assert names is None or node.attr in names, (path.name, module, node.attr)


# --- the compiled build (mypyc) and the pure-Python build behave alike -------------------------

def test_compiled_flag_names_the_module_in_use() -> None:
    import reference
    import reference.page_alloc

    assert isinstance(reference.COMPILED, bool)
    assert reference.COMPILED == (not reference.page_alloc.__file__.endswith(".py"))


def test_interpreted_subclass_overrides_are_called_from_the_reference() -> None:
    """The checker's mutants subclass the (possibly compiled) Zone in plain Python: the
    reference's own calls must reach their overrides, and their writes to its arrays."""
    from collections import deque

    calls: list[tuple[int, int]] = []

    class Counting(ReferenceZone):
        def _rmqueue_bulk(self, order: int, count: int, lst: deque[int], mt: int,
                          alloc_flags: int) -> int:
            calls.append((order, count))
            return super()._rmqueue_bulk(order, count, lst, mt, alloc_flags)

    cfg = CONFIGS["tiny"]
    z = spec.init_zone(cfg)
    ref = Counting(cfg)
    for step in range(6):
        z, _ = step_both(z, ref, ("alloc_pages", C.GFP_KERNEL, 0, 0), f"alloc {step}")
    assert calls, "the override of _rmqueue_bulk was never called"
    assert_same(ref, z, "after allocations through the subclass")

    class Refusing(ReferenceZone):
        def _rmqueue_bulk(self, order: int, count: int, lst: deque[int], mt: int,
                          alloc_flags: int) -> int:
            return 0

    # Nothing reaches the per-CPU list, so the page comes from the buddy (__rmqueue).
    refusing = Refusing(cfg)
    assert refusing.alloc_pages(C.GFP_KERNEL, 0) is not None
    assert refusing.abstract().pcp[0].count == 0

    # A subclass's writes to the per-page arrays are what the reference reads.
    ref2 = ReferenceZone(cfg)
    pfn = ref2.alloc_pages(C.GFP_KERNEL, 0)
    assert pfn is not None
    ref2._state[pfn - cfg.zone_start_pfn] = 0
    with pytest.raises(SpecError):
        ref2.free_pages(pfn, 0)
