"""The rule book's evidence: every rule is checked both ways, or says why not.

Positive evidence: a test (or proof, explorer property, oracle corpus) that runs the rule and
passes. Negative evidence: a test marked ``seeded_bug`` showing the rule's check catching a
deliberately broken implementation, variant, state or input (or a proof's broken twin).
"""

from __future__ import annotations

from pathlib import Path

from checker.evidence import coverage, from_tests
from checker.rulebook import rules
from spec.rules import Rule


def test_unchecked_rules_give_a_reason() -> None:
    for r in rules():
        assert r.unchecked == "" or len(r.unchecked.split()) >= 4, r.id


def _tree(tmp_path: Path, source: str) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(source)
    return tmp_path


# IDs are built, not written, so that this file does not cite rules that do not exist.
OP = "ALLOC" + "-OP-"

SAMPLE = '''
import pytest
TABLE = {"a": "@OP@901"}

def helper():
    return "@OP@903"

def test_positive_@US@900():
    assert helper()

@pytest.mark.seeded_bug
def test_negative():
    assert TABLE["a"]

@pytest.mark.seeded_bug
@pytest.mark.parametrize("x", ["@OP@902"])
def test_parametrized(x):
    pass

def test_uses_table():
    assert TABLE
'''.replace("@OP@", OP).replace("@US@", OP.replace("-", "_"))


def test_collector_reads_marks_tables_and_helpers(tmp_path: Path) -> None:
    ev = {(e.rule, e.negative, e.where.split("::")[-1]) for e in from_tests(_tree(tmp_path,
                                                                                  SAMPLE))}
    positive = "test_positive_" + OP.replace("-", "_") + "900"
    assert (OP + "900", False, positive) in ev
    assert (OP + "903", False, positive) in ev  # through helper()
    assert (OP + "901", True, "test_negative") in ev  # through the module table
    assert (OP + "901", False, "test_uses_table") in ev
    assert (OP + "902", True, "test_parametrized") in ev


def _rule(rule_id: str, unchecked: str = "") -> Rule:
    return Rule(rule_id, "t", "text", "a.c:f @ v6.18", ("v6.18",), "m", "q", None, unchecked)


def test_coverage_reports_a_rule_with_only_positive_evidence(tmp_path: Path) -> None:
    # The seeded bug of the evidence check: a rule nobody showed catching anything.
    ev = {}
    for e in from_tests(_tree(tmp_path, SAMPLE)):
        ev.setdefault(e.rule, []).append(e)
    rows = {r["id"]: r for r in coverage(
        [_rule(OP + "900"), _rule(OP + "901"), _rule(OP + "904"),
         _rule(OP + "905", unchecked="no oracle exists for this one")], ev)}
    assert rows[OP + "900"]["missing"] == ["negative"]
    assert rows[OP + "901"]["missing"] == []
    assert rows[OP + "904"]["missing"] == ["positive", "negative"]
    assert rows[OP + "905"]["missing"] == []
