"""Every broken twin of a spec rule is caught by the checker (negative evidence per rule)."""

from __future__ import annotations

import pytest

from checker.spec_twins import TWINS, baseline, catch
from spec.rules import RULES, load_all


def test_the_runs_find_nothing_without_a_twin() -> None:
    # Otherwise "caught" below would mean nothing.
    assert baseline() == []


def test_every_twin_names_a_registered_rule_and_function() -> None:
    load_all()
    for rule_id, twin in TWINS.items():
        assert rule_id in RULES, rule_id
        r = RULES[rule_id]
        module, name = twin.target.split(":")
        assert (r.module, r.qualname) == (module, name), (rule_id, twin.target)


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(TWINS))
def test_broken_twin_is_caught(rule_id: str) -> None:
    result = catch(rule_id, fuzz_seconds=60)
    assert result["caught"], f"{rule_id}: twin '{TWINS[rule_id].doc}' survived"
