"""Every broken twin of a TIER spec rule is caught by the TIER checks (seeded lockstep programs
against the unpatched numpy reference, with every TIER invariant after every step, then the
Hypothesis lockstep fuzz): negative evidence per rule. The same programs without a twin find
nothing, and every TIER invariant holds on each state they reach."""

from __future__ import annotations

import importlib

import pytest

from checker.tier_twins import MORE_TWINS, TWINS, baseline, catch, catch_twin, run_program
from spec import tiering as T
from spec.rules import load_all
from spec.tier_common import TIER_VARIANTS


def test_the_checks_find_nothing_without_a_twin() -> None:
    # Otherwise "caught" below would mean nothing.
    assert baseline(seeds=25) == []


def test_every_twin_replaces_what_states_its_rule() -> None:
    rules = load_all()
    for rule_id, twin in TWINS.items():
        module, name = twin.target.split(":")
        assert getattr(importlib.import_module(module), name) is rules[rule_id].obj, rule_id
        assert rule_id.startswith("TIER-") and twin.check is not None


@pytest.mark.seeded_bug
@pytest.mark.parametrize("rule_id", sorted(TWINS))
def test_broken_twin_is_caught(rule_id: str) -> None:
    result = catch(rule_id, fuzz_seconds=10)
    assert result["caught"], f"{rule_id}: twin '{TWINS[rule_id].doc}' survived"
    assert result["by"].startswith(("lockstep ", "lockstep fuzz: ")), result["by"]
    # The twin is taken out again: the spec runs clean afterwards.
    assert run_program(TIER_VARIANTS[0], 0) is None


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(MORE_TWINS))
def test_more_twins_are_caught(name: str) -> None:
    result = catch_twin(MORE_TWINS[name], fuzz_seconds=10)
    assert result["caught"], f"{name}: twin '{MORE_TWINS[name].doc}' survived"
    assert result["by"].startswith("lockstep "), result["by"]


#: Each invariant, by rule ID, checked on its own.
INVARIANTS = {"TIER-INV-001": T.one_node_per_page, "TIER-INV-002": T.capacity,
              "TIER-INV-003": T.rate_limit_respected, "TIER-INV-004": T.records_only_lower_tier,
              "TIER-INV-005": T.records_well_formed, "TIER-INV-006": T.bounded_structures}


def test_invariants_hold_throughout_lockstep_TIER_INV_001_to_006() -> None:
    """TIER-INV-001, TIER-INV-002, TIER-INV-003, TIER-INV-004, TIER-INV-005, TIER-INV-006
    hold on every state the seeded lockstep programs reach, on every variant, and those
    states are not trivial: pages moved between tiers, nodes filled up, records, heaps and
    the CHMU hot list exist."""
    seen: dict[str, int] = {}
    bad: list[tuple[str, str, list[str]]] = []

    def observe(s: T.TierState) -> None:
        cfg = s.config
        for rid, inv in INVARIANTS.items():
            if found := inv(s):
                bad.append((cfg.variant, rid, found))
        if s.node_of != cfg.placement:
            seen["moved"] = seen.get("moved", 0) + 1
        if any(len(p) == cfg.nodes[n].capacity for n, p in enumerate(s.placement())):
            seen["full node"] = seen.get("full node", 0) + 1
        if s.records:
            seen[f"records {cfg.variant}"] = 1
        if any(s.heaps):
            seen["heap member"] = 1
        if s.chmu_hotlist:
            seen["chmu hot list"] = 1
        if any(p.slot_promoted for p in s.pgdat):
            seen["rate-limited promotion"] = 1

    for v in TIER_VARIANTS:
        for seed in range(12):
            assert run_program(v, seed, observe=observe) is None, (v, seed)
    assert bad == []
    for what in ("moved", "full node", "heap member", "chmu hot list",
                 "rate-limited promotion"):
        assert seen.get(what), f"no state with: {what}"
    for v in ("kpromoted-v0", "pghot-v1", "pghot-v2", "pghot-v3", "pghot-v6-default",
              "pghot-v6-precise"):
        assert seen.get(f"records {v}"), f"no {v} record was ever made"
