"""Every broken twin of a NOLOCK spec rule is caught by the NOLOCK checks (the explorer on the
default configurations, then the unpatched reference against the spec on every edge of the
small state graphs, then the lockstep fuzz): negative evidence per rule. The same checks
without a twin find nothing."""

from __future__ import annotations

import importlib

import pytest

from checker.nolock_twins import (
    REFERENCE_BLIND,
    TWINS,
    baseline,
    catch,
    reference_finding,
    run_checks,
)
from spec.rules import load_all


def test_the_checks_find_nothing_without_a_twin() -> None:
    # Otherwise "caught" below would mean nothing.
    assert baseline(fuzz_seconds=3) == []


def test_every_twin_replaces_the_function_that_states_its_rule() -> None:
    rules = load_all()
    for rule_id, twin in TWINS.items():
        module, name = twin.target.split(":")
        stated_by = rules[rule_id].obj
        assert getattr(importlib.import_module(module), name) is stated_by, rule_id
        assert twin.check is run_checks, rule_id


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(TWINS))
def test_broken_twin_is_caught(rule_id: str) -> None:
    result = catch(rule_id, fuzz_seconds=10)
    assert result["caught"], f"{rule_id}: twin '{TWINS[rule_id].doc}' survived"
    assert result["by"].startswith(("explore ", "lockstep ")), result["by"]
    # The twin is taken out again: the spec explores clean afterwards.
    from checker.nolock_explore import run
    assert run("SMP=n").ok


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(set(TWINS) - set(REFERENCE_BLIND)))
def test_broken_twin_differs_from_the_reference(rule_id: str) -> None:
    # A second, independent catch: the unpatched reference, walked over every edge of the
    # small state graphs, disagrees with the spec that holds the twin.
    found = reference_finding(rule_id)
    assert found is not None, f"{rule_id}: the reference agrees with '{TWINS[rule_id].doc}'"
