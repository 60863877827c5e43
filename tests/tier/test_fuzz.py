"""TIER lockstep: the reference never departs from the spec; every seeded bug is caught.

Rule IDs checked after every step of ``checker.tiering_fuzz.TierLockstep``: all TIER-INV
invariants, TIER-PROP-001 for each promotion, and the operations TIER-OP-001/002/010..014/
020/021/030/031/040 through the state comparison.
"""

from __future__ import annotations

import pytest

import checker.commands.tiering  # noqa: F401  (registers the "tier" fuzz area)
from checker.fuzz import run_fuzz
from checker.tiering_fuzz import MUTANTS, machine_for
from reference.tiering import TierMachine

TestReferenceLockstep = machine_for(TierMachine).TestCase


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name,rules", [
    ("counts-toptier", "TIER-OP-001 TIER-OP-011 TIER-INV-004"),
    ("ignores-window", "TIER-POL-001 TIER-OP-010"),
    ("exceeds-rate-limit", "TIER-POL-021 TIER-INV-003"),
])
def test_seeded_bug_is_caught(name: str, rules: str) -> None:
    assert name in MUTANTS
    result = run_fuzz(f"mutant:{name}", seconds=45, seed=0, shrink_seconds=5, area="tier")
    assert result.failure is not None, f"mutant {name} ({rules}) survived"
    assert "state.init_machine(" in (result.program or "")


def test_reference_short_fuzz_finds_nothing() -> None:
    result = run_fuzz("reference", examples=60, seed=3, area="tier")
    assert result.failure is None, result.program
