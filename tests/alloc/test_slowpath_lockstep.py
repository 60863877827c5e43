"""Lockstep: the reference slow path, reclaim and compaction against the spec; seeded bugs."""

from __future__ import annotations

import pytest

import checker.commands.slowpath  # noqa: F401  (registers the fuzz area)
from checker.fuzz import run_fuzz
from checker.mutants import SLOWPATH_MUTANTS


def test_reference_agrees_with_spec_ALLOC_OP_057_ALLOC_OP_053_ALLOC_OP_050() -> None:
    r = run_fuzz("reference", examples=60, area="slowpath", steps=30)
    assert r.failure is None, r.program


# Each mutant breaks the rule its docstring names; the lockstep machine must notice.
FAST_MUTANTS = {
    "no-reclaim-retry-bound": "ALLOC-POL-055",
    "defrag-retry-unchecked": "ALLOC-PROP-050",
    "reclaim-newest-first": "ALLOC-OP-050",
    "no-capture": "ALLOC-OP-053",
    "kswapd-balances-in-base-pages": "ALLOC-POL-051",
}


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(FAST_MUTANTS))
def test_mutant_caught_ALLOC_POL_055_ALLOC_PROP_050_ALLOC_OP_050_ALLOC_OP_053_ALLOC_POL_051(
        name: str) -> None:
    assert FAST_MUTANTS[name] in (SLOWPATH_MUTANTS[name].__doc__ or "")
    r = run_fuzz(f"mutant:{name}", seconds=60, area="slowpath", steps=40, shrink_seconds=2)
    assert r.failure is not None, f"mutant {name} not caught in {r.examples} examples"


@pytest.mark.slow
@pytest.mark.seeded_bug
def test_atomic_mutant_caught_ALLOC_PROP_051() -> None:
    r = run_fuzz("mutant:atomic-fails-under-defrag", seconds=240, area="slowpath", steps=40,
                 shrink_seconds=5)
    assert r.failure is not None
