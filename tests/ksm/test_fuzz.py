"""Lockstep fuzzing of the KSM reference against the spec, and the seeded mutants."""

from __future__ import annotations

import pytest

from checker import fuzz
from checker.commands.ksm import MUTANT_RULES, _mutants


def test_reference_agrees_with_the_spec_in_lockstep_KSM_OP_001() -> None:
    res = fuzz.run_fuzz("reference", examples=30, area="ksm", steps=25, seed=1)
    assert res.failure is None, res.program


def test_every_mutant_names_its_rules() -> None:
    assert set(MUTANT_RULES) == set(_mutants())


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(MUTANT_RULES))
def test_mutant_is_caught_KSM_OP_002_KSM_OP_004_KSM_OP_007_KSM_OP_012_KSM_OP_013_KSM_INV_001(
        name: str) -> None:
    res = fuzz.run_fuzz(f"mutant:{name}", seconds=60, area="ksm", steps=25, seed=0,
                        shrink_seconds=1)
    assert res.failure is not None, f"mutant {name} ({MUTANT_RULES[name]}) not caught"
