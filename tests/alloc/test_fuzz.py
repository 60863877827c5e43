"""Lockstep fuzzing: the reference never departs from the spec, and every seeded bug is caught.

Rule IDs checked here: every ALLOC-INV invariant and ALLOC-PROP-001 run after each step of
the machine (``checker.fuzz.AllocLockstep``).
"""

from __future__ import annotations

import pytest

from checker.fuzz import machine_for, run_fuzz
from checker.mutants import MUTANTS
from reference import Zone as ReferenceZone

# Hypothesis runs this with the active profile (dev, ci or nightly).
TestReferenceLockstep = machine_for(ReferenceZone).TestCase


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_seeded_bug_is_caught_within_60_seconds(name: str) -> None:
    result = run_fuzz(f"mutant:{name}", seconds=60, seed=0, shrink_seconds=10)
    assert result.failure is not None, f"mutant {name} survived {result.examples} examples"
    assert result.detected_after is not None and result.detected_after < 60
    # The shrunk program is printed as runnable steps.
    assert "state.init_zone(" in (result.program or "")


def test_reference_fuzz_for_a_fixed_budget_finds_nothing() -> None:
    result = run_fuzz("reference", examples=50, seed=1)
    assert result.failure is None, result.program
