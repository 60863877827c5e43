"""Every KSM invariant has a non-vacuity witness and a broken twin among the proof
obligations (issue 7): KSM-INV-001, KSM-INV-002, KSM-INV-003."""

from __future__ import annotations

import pytest

import proofs.ksm as PK
from checker.spec_twins import installed
from proofs.runner import COUNTEREXAMPLE, PROVED, load_all
from spec import ksm
from spec.rules import load_all as load_rules

from .helpers import run_group

#: By hand from spec/ksm.py's rules.
KSM_INVARIANTS = ["KSM-INV-001", "KSM-INV-002", "KSM-INV-003"]


def _replay(text: str) -> ksm.KsmState:
    ns: dict[str, object] = {}
    exec(text, ns)
    s = ns["s"]
    assert isinstance(s, ksm.KsmState)
    return s


def test_every_ksm_invariant_has_both_obligations_KSM_INV_001_KSM_INV_002_KSM_INV_003() -> None:
    assert sorted(r for r in load_rules() if r.startswith("KSM-INV-")) == KSM_INVARIANTS
    reg = load_all()
    for rid in KSM_INVARIANTS:
        nv, tw = reg[f"ksm.nonvacuity.{rid}"], reg[f"ksm.twin.{rid}"]
        assert nv.expected == PROVED and {"bounded", "nonvacuity"} <= nv.tags
        assert tw.expected == COUNTEREXAMPLE and {"bounded", "twin"} <= tw.tags
        assert rid in nv.rules and rid in tw.rules


def test_ksm_invariant_witnesses_replay_KSM_INV_001_and_the_rest() -> None:
    """Witnesses of KSM-INV-001, KSM-INV-002, KSM-INV-003."""
    rs = run_group("ksm.nonvacuity")
    premises = {rid: p for rid, _, p, _ in PK.KSM_INV_OBLIGATIONS}
    for rid in KSM_INVARIANTS:
        r = rs[f"ksm.nonvacuity.{rid}"]
        assert r.verdict == PROVED and r.counterexample
        s = _replay(r.counterexample)
        assert not ksm.check_invariants(s) and premises[rid](s)
    # KSM-INV-002 at its bound: with max_page_sharing 2, A's two "x" pages merge into one
    # KSM page whose stable node holds 2 rmap_items, the most it may.
    s = _replay(rs["ksm.nonvacuity.KSM-INV-002"].counterexample or "")
    assert s.max_page_sharing == 2 and max(len(n.hlist) for n in s.nodes.values()) == 2


@pytest.mark.seeded_bug
def test_ksm_twins_break_KSM_INV_001_and_the_rest() -> None:
    """Broken twins of KSM-INV-001, KSM-INV-002, KSM-INV-003: each yields a state its invariant
    rejects."""
    rs = run_group(*(f"ksm.twin.{rid}" for rid in KSM_INVARIANTS))
    checks = {rid: (check, twin) for rid, check, _, twin in PK.KSM_INV_OBLIGATIONS}
    for rid in KSM_INVARIANTS:
        r = rs[f"ksm.twin.{rid}"]
        assert r.verdict == COUNTEREXAMPLE and r.counterexample
        check, twin = checks[rid]
        with installed(twin):
            assert check(_replay(r.counterexample))
        assert check(_replay(r.counterexample)) == []  # the correct spec keeps it
    # The write that does not break COW: B (never merged) is untouched, but A's other merged
    # "x" page reads the writer's "z".
    assert "reads 'z', its last write was 'x'" in rs["ksm.twin.KSM-INV-001"].detail
