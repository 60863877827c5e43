"""Every state invariant holds on reachable states and fires on a state broken for it.

Each case corrupts one field of a valid spec state the way an implementation bug would and
requires that the invariant's own rule ID is reported (a check that cannot fail is no check).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

import spec
import spec.constants as C
from spec.buddy import account_freepages, add_to_free_list, del_page_from_free_list
from spec.invariants import INVARIANTS, check_invariants, nofragment_guarantee
from spec.zone import Allocation, Work, Zone, ZoneConfig

U, M = C.MIGRATE_UNMOVABLE, C.MIGRATE_MOVABLE
CFG = ZoneConfig(nr_pageblocks=8, max_page_order=3, pageblock_order=2, nr_cpus=2,
                 min_free_kbytes=0, thp=False, watermark_boost_factor=0)


def valid_state() -> Zone:
    z = spec.init_zone(CFG)
    z, a = spec.alloc_pages(z, C.GFP_KERNEL, 0, 0)       # claims blocks 0-1 for UNMOVABLE
    z, b = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 1, 1)
    z, c = spec.alloc_pages(z, C.GFP_HIGHUSER_MOVABLE, 0, 1)
    z, _ = spec.free_pages(z, c, 0, 1)                    # leaves a page on cpu 1's list
    assert a is not None and b is not None
    return z


def unmerged_buddies(z: Zone) -> Zone:
    w = Work(z)
    pfn, (order, mt) = next((p, e) for p, e in sorted(w.buddy.items()) if e[0] == 1)
    del_page_from_free_list(w, pfn, order, mt)
    for half in (pfn, pfn + 1):
        add_to_free_list(w, half, 0, mt, tail=True)
        account_freepages(w, 1, mt)
    return w.freeze()


def retype_free_block(z: Zone) -> Zone:
    pfn, _, mt = z.free_blocks()[0]
    types = list(z.pageblock_migratetype)
    types[CFG.pageblock_of(pfn)] = C.MIGRATE_RECLAIMABLE if mt != C.MIGRATE_RECLAIMABLE else U
    return attrs.evolve(z, pageblock_migratetype=tuple(types))


def with_pcp(z: Zone, **changes: int) -> Zone:
    return attrs.evolve(z, pcp=(attrs.evolve(z.pcp[0], **changes),) + z.pcp[1:])


BROKEN: dict[str, Callable[[Zone], Zone]] = {
    "ALLOC-INV-001": lambda z: attrs.evolve(z, allocated=z.allocated | {Allocation(33, 1, U)}),
    "ALLOC-INV-002": lambda z: attrs.evolve(z, allocated=frozenset(list(z.allocated)[1:])),
    "ALLOC-INV-003": unmerged_buddies,
    "ALLOC-INV-004": retype_free_block,
    "ALLOC-INV-005": lambda z: attrs.evolve(z, nr_free=(z.nr_free[0] + 1,) + z.nr_free[1:]),
    "ALLOC-INV-006": lambda z: attrs.evolve(z, nr_free_pages=z.nr_free_pages + 1),
    "ALLOC-INV-007": lambda z: with_pcp(z, count=z.pcp[0].count + 1),
    "ALLOC-INV-008": lambda z: with_pcp(z, alloc_factor=C.PCP_BATCH_SCALE_MAX + 1),
    "ALLOC-INV-009": lambda z: attrs.evolve(z, nr_reserved_highatomic=4),
    "ALLOC-INV-010": lambda z: attrs.evolve(z, watermark=(5, 4, 6, 7)),
    "ALLOC-INV-011": lambda z: attrs.evolve(
        z, pageblock_migratetype=(C.MIGRATE_ISOLATE,) + z.pageblock_migratetype[1:]),
}


def test_every_invariant_has_a_broken_state() -> None:
    ids = {fn.__rules__[0] for fn in INVARIANTS}  # type: ignore[attr-defined]
    assert ids == set(BROKEN)


def test_valid_state_satisfies_every_invariant() -> None:
    z = valid_state()
    assert z.pcp[1].count > 0 and len(z.allocated) == 2  # the state exercises pcp and owners
    assert check_invariants(z) == []


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(BROKEN))
def test_invariant_fires_on_its_broken_state(rule_id: str) -> None:
    broken = BROKEN[rule_id](valid_state())
    fired = {rid for rid, _ in check_invariants(broken)}
    assert rule_id in fired


def test_nofragment_guarantee_ALLOC_PROP_001() -> None:
    cfg = attrs.evolve(CFG, defrag_mode=1, pageblock_order=3, max_page_order=3,
                       pageblock_types=(U,) * 8)
    before = spec.init_zone(cfg)
    after, pfn = spec.alloc_pages(before, C.GFP_HIGHUSER_MOVABLE, 0)
    assert pfn is not None and nofragment_guarantee(before, after, C.GFP_HIGHUSER_MOVABLE) == []


@pytest.mark.seeded_bug
def test_nofragment_guarantee_catches_a_steal_ALLOC_PROP_001() -> None:
    cfg = attrs.evolve(CFG, defrag_mode=1, pageblock_order=3, max_page_order=3,
                       pageblock_types=(U,) * 8)
    before = spec.init_zone(cfg)
    after, pfn = spec.alloc_pages(before, C.GFP_HIGHUSER_MOVABLE, 0)
    # The same page taken without retyping its block (a steal) breaks the property.
    polluted = attrs.evolve(after, pageblock_migratetype=before.pageblock_migratetype)
    assert nofragment_guarantee(before, polluted, C.GFP_HIGHUSER_MOVABLE)
