"""Every broken twin of a KSM spec rule is caught by the KSM checks (the spec against the
outputs Linux 6.18 recorded for the corpus, with the invariants after every step; then the
unpatched numpy reference in lockstep, pass by pass, with the write-fault observation
checked by writing; then the lockstep fuzz): negative evidence per rule. The same checks
without a twin find nothing."""

from __future__ import annotations

import importlib

import pytest

from checker.ksm_twins import TWINS, baseline, catch, run_checks
from spec.rules import load_all


def test_the_checks_find_nothing_without_a_twin() -> None:
    # Otherwise "caught" below would mean nothing.
    assert baseline(fuzz_seconds=2) == []


def test_every_twin_replaces_what_states_its_rule() -> None:
    rules = load_all()
    for rule_id, twin in TWINS.items():
        module, name = twin.target.split(":")
        assert getattr(importlib.import_module(module), name) is rules[rule_id].obj, rule_id
        assert twin.check is run_checks, rule_id


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(TWINS))
def test_broken_twin_is_caught(rule_id: str) -> None:
    result = catch(rule_id, fuzz_seconds=2)
    assert result["caught"], f"{rule_id}: twin '{TWINS[rule_id].doc}' survived"
    assert result["by"].startswith(("corpus ", "lockstep ")), result["by"]
    if rule_id == "KSM-PROP-001":
        # The observation is not a counter: only a write done on the reference tells a page
        # still shared after fork (it faults) from an exclusive one.
        assert "write faults of" in result["by"], result["by"]
    # The twin is taken out again.
    module, name = TWINS[rule_id].target.split(":")
    assert getattr(importlib.import_module(module), name) is load_all()[rule_id].obj
