"""Every NOLOCK invariant has a non-vacuity witness and a broken twin among the proof
obligations (issue 7): NOLOCK-INV-001, NOLOCK-INV-002, NOLOCK-INV-003, NOLOCK-INV-004."""

from __future__ import annotations

import contextlib

import pytest

import proofs.nolock as PN
from checker.spec_twins import installed
from proofs.runner import COUNTEREXAMPLE, PROVED, load_all
from spec.nolock import STATE_RULES, NolockModel, NolockState
from spec.rules import load_all as load_rules

from .helpers import run_group

#: Written out by hand from spec/nolock.py's @rule declarations, so that a new NOLOCK-INV
#: rule without obligations fails the first test.
NOLOCK_INVARIANTS = ["NOLOCK-INV-001", "NOLOCK-INV-002", "NOLOCK-INV-003", "NOLOCK-INV-004"]


def _replay(text: str) -> tuple[NolockModel, NolockState]:
    ns: dict[str, object] = {}
    exec(text, ns)
    m, s = ns["m"], ns["s"]
    assert isinstance(m, NolockModel) and isinstance(s, NolockState)
    return m, s


def test_every_nolock_invariant_has_both_obligations_NOLOCK_INV_001_to_004() -> None:
    assert sorted(r for r in load_rules() if r.startswith("NOLOCK-INV-")) == NOLOCK_INVARIANTS
    reg = load_all()
    for rid in NOLOCK_INVARIANTS:
        nv, tw = reg[f"nolock.nonvacuity.{rid}"], reg[f"nolock.twin.{rid}"]
        assert nv.expected == PROVED and {"bounded", "nonvacuity"} <= nv.tags
        assert tw.expected == COUNTEREXAMPLE and {"bounded", "twin"} <= tw.tags
        assert rid in nv.rules and rid in tw.rules


def test_nolock_invariant_witnesses_replay_NOLOCK_INV_001_and_the_rest() -> None:
    """Witnesses of NOLOCK-INV-001, NOLOCK-INV-002, NOLOCK-INV-003, NOLOCK-INV-004."""
    rs = run_group("nolock.nonvacuity")
    premises = {rid: p for rid, p, *_ in PN.NOLOCK_INV_OBLIGATIONS}
    for rid in NOLOCK_INVARIANTS:
        r = rs[f"nolock.nonvacuity.{rid}"]
        assert r.verdict == PROVED and r.counterexample
        m, s = _replay(r.counterexample)  # the printed trace reaches the witness
        assert dict(STATE_RULES)[rid](m, s) is None and premises[rid](m, s)
    # NOLOCK-INV-002's witness is an interrupt over a context inside a pcp critical section:
    # on one CPU that is a stack of two contexts, the lower one holding cpu0's pcp->lock.
    _, s = _replay(rs["nolock.nonvacuity.NOLOCK-INV-002"].counterexample or "")
    assert len(s.stacks[0]) == 2 and s.locks[1] == 0


@pytest.mark.seeded_bug
def test_nolock_twins_break_NOLOCK_INV_001_and_the_rest() -> None:
    """Broken twins of NOLOCK-INV-001, NOLOCK-INV-002, NOLOCK-INV-003, NOLOCK-INV-004: each
    yields a state its invariant rejects."""
    rs = run_group(*(f"nolock.twin.{rid}" for rid in NOLOCK_INVARIANTS))
    twins = {rid: twin for rid, _, _, twin, _ in PN.NOLOCK_INV_OBLIGATIONS}
    for rid in NOLOCK_INVARIANTS:
        r = rs[f"nolock.twin.{rid}"]
        assert r.verdict == COUNTEREXAMPLE and r.counterexample
        twin = twins[rid]
        with installed(twin) if twin is not None else contextlib.nullcontext():
            m, s = _replay(r.counterexample)
            assert dict(STATE_RULES)[rid](m, s) is not None
    # NOLOCK-INV-002's twin is the bug zoo's UP NMI (6.18 as released): the NMI's
    # spin_trylock of the pcp lock succeeds inside the task's pcp section.
    assert "smp-n-nmi" in (rs["nolock.twin.NOLOCK-INV-002"].counterexample or "")
    assert "two contexts inside cpu0's pcp critical section" in rs[
        "nolock.twin.NOLOCK-INV-002"].detail
