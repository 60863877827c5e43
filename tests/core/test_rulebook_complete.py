"""The rule book is complete: every rule is checked both ways or says why not, and no test
cites a rule that does not exist (the build fails on both)."""

from __future__ import annotations

from checker.evidence import collect, coverage
from checker.rulebook import rules


def test_every_rule_has_positive_and_negative_evidence_or_a_reason() -> None:
    rows = coverage(rules(), collect())
    missing = [f"{r['id']}: no {' and no '.join(r['missing'])} evidence"
               for r in rows if r["missing"]]
    assert not missing, "\n".join(missing)


def test_no_test_cites_an_unregistered_rule() -> None:
    registered = {r.id for r in rules()}
    assert sorted(set(collect()) - registered) == []
