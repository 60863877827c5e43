"""Every TIER invariant has a non-vacuity witness and a broken twin among the proof
obligations (issue 7): TIER-INV-001 .. TIER-INV-006."""

from __future__ import annotations

import pytest

import proofs.tiering as PT
import spec.tiering as T
from checker.spec_twins import installed
from proofs.runner import COUNTEREXAMPLE, PROVED, load_all
from spec.rules import load_all as load_rules
from spec.tier_state import TierState

from .helpers import run_group

#: By hand from spec/tiering.py's rules.
TIER_INVARIANTS = ["TIER-INV-001", "TIER-INV-002", "TIER-INV-003", "TIER-INV-004",
                   "TIER-INV-005", "TIER-INV-006"]


def _replay(text: str) -> TierState:
    ns: dict[str, object] = {}
    exec(text, ns)
    s = ns["s"]
    assert isinstance(s, TierState)
    return s


def test_every_tier_invariant_has_both_obligations_TIER_INV_001_to_006() -> None:
    assert sorted(r for r in load_rules() if r.startswith("TIER-INV-")) == TIER_INVARIANTS
    reg = load_all()
    for rid in TIER_INVARIANTS:
        nv, tw = reg[f"tier.nonvacuity.{rid}"], reg[f"tier.twin.{rid}"]
        assert nv.expected == PROVED and {"bounded", "nonvacuity"} <= nv.tags
        assert tw.expected == COUNTEREXAMPLE and {"bounded", "twin"} <= tw.tags
        assert rid in nv.rules and rid in tw.rules


def test_tier_invariant_witnesses_replay_TIER_INV_001_and_the_rest() -> None:
    """Witnesses of TIER-INV-001, TIER-INV-002, TIER-INV-003, TIER-INV-004, TIER-INV-005, TIER-
    INV-006."""
    rs = run_group("tier.nonvacuity")
    premises = {rid: p for rid, _, _, p, _, _ in PT.TIER_INV_OBLIGATIONS}
    for rid in TIER_INVARIANTS:
        r = rs[f"tier.nonvacuity.{rid}"]
        assert r.verdict == PROVED and r.counterexample
        s = _replay(r.counterexample)
        assert not T.check_invariants(s) and premises[rid](s)
    # TIER-INV-003 at its limit: 1 MB/s of 1 MB pages is one page per slot, and one page
    # was promoted on the rate-limited path (enough_floor_pages 100: no bypass).
    s = _replay(rs["tier.nonvacuity.TIER-INV-003"].counterexample or "")
    assert s.config.rate_limit_pages == 1 and max(p.slot_promoted for p in s.pgdat) == 1


@pytest.mark.seeded_bug
def test_tier_twins_break_TIER_INV_001_and_the_rest() -> None:
    """Broken twins of TIER-INV-001, TIER-INV-002, TIER-INV-003, TIER-INV-004, TIER-INV-005,
    TIER-INV-006: each yields a state its invariant rejects."""
    rs = run_group(*(f"tier.twin.{rid}" for rid in TIER_INVARIANTS))
    by_rule = {rid: (check, twin) for rid, check, _, _, _, twin in PT.TIER_INV_OBLIGATIONS}
    for rid in TIER_INVARIANTS:
        r = rs[f"tier.twin.{rid}"]
        assert r.verdict == COUNTEREXAMPLE and r.counterexample
        check, twin = by_rule[rid]
        with installed(twin):
            assert check(_replay(r.counterexample))
        assert check(_replay(r.counterexample)) == []  # the correct spec keeps it
    # Without the rate limit, two pages made hot in the same jiffy are both promoted.
    assert "promoted 2 pages in one slot, limit 1" in rs["tier.twin.TIER-INV-003"].detail
    # The unmasked v2 increment stores 8 after eight accesses.
    assert "frequency=8" in rs["tier.twin.TIER-INV-005"].detail
