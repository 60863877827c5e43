"""The KSM proof obligations, held to ``proofs/manifest.json``; each test names its rules."""

from __future__ import annotations

import pytest

from proofs.runner import COUNTEREXAMPLE, PROVED
from spec import ksm

from .helpers import run_group


def test_invariants_on_every_bounded_program_KSM_INV_001_KSM_INV_002_KSM_INV_003() -> None:
    rs = run_group("ksm.bounded")
    assert all(r.verdict == PROVED for r in rs.values())
    assert len({r.states for r in rs.values()}) == 1
    # The witness: four copies of "x" with max_page_sharing 2 need two dups, hence a chain.
    ns: dict[str, object] = {}
    wit = rs["ksm.bounded.nonvacuity"].counterexample
    assert wit is not None
    exec(wit, ns)
    s = ns["s"]
    assert isinstance(s, ksm.KsmState) and s.stable_node_chains == 1


@pytest.mark.seeded_bug
def test_uncounted_cow_break_is_caught_KSM_INV_003_KSM_OP_012() -> None:
    r = run_group("ksm.twin.write_uncounted")["ksm.twin.write_uncounted"]
    assert r.verdict == COUNTEREXAMPLE and r.counterexample
    ns: dict[str, object] = {}
    exec(r.counterexample, ns)  # the program replays with the twin as its last step
    s = ns["s"]
    assert isinstance(s, ksm.KsmState) and ksm.check_counters(s)
