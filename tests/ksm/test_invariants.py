"""KSM state invariants: they hold on every corpus state and fire on states broken for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.ksm_scenario import SpecRunner, apply_step, load, model_knobs
from spec import ksm

DATA = Path(__file__).resolve().parent.parent / "data" / "ksm" / "scenarios"


def merged_state() -> ksm.KsmState:
    r = SpecRunner({"max_page_sharing": 3})
    r.create_process("a", ("X",) * 5 + ("Y",) * 2)
    r.madvise("a", 0, 7, "mergeable")
    r.scan()
    return r.state


def test_invariants_hold_after_every_corpus_step_KSM_INV_001_KSM_INV_002_KSM_INV_003() -> None:
    n = 0
    for path in sorted(DATA.glob("*.json")):
        sc = load(path)
        if sum(len(c) for c in sc.processes.values()) > 100:
            continue
        r = SpecRunner(model_knobs(sc), sc.variant)
        for name, contents in sc.processes.items():
            r.create_process(name, contents)
        for st in sc.steps:
            apply_step(r, st)
            assert ksm.check_invariants(r.state) == [], (path.stem, st)
            n += 1
    assert n > 100


@pytest.mark.seeded_bug
def test_isolation_catches_a_merge_of_different_content_KSM_INV_001() -> None:
    s = merged_state()
    y_page = s.mms["a"].ptes[5]
    assert y_page is not None
    s.mms["a"].ptes[0] = y_page          # a broken merge: X mapped to the Y page
    s.pages[y_page].mapcount += 1
    assert any("reads 'Y'" in m for m in ksm.check_isolation(s))


@pytest.mark.seeded_bug
def test_overfull_dup_is_caught_KSM_INV_002() -> None:
    s = merged_state()
    node = next(n for n in s.nodes.values() if n.content == "X" and len(n.hlist) == 3)
    node.hlist.append(ksm.RmapItem("a", 99, flags=ksm.STABLE, head=node.id))
    assert any("max_page_sharing" in m for m in ksm.check_stable_nodes(s))


@pytest.mark.seeded_bug
def test_counter_drift_is_caught_KSM_INV_003() -> None:
    s = merged_state()
    s.pages_sharing += 1
    assert any(m.startswith("pages_sharing") for m in ksm.check_counters(s))
    s = merged_state()
    s.stable_node_dups -= 1
    assert any(m.startswith("stable_node_dups") for m in ksm.check_counters(s))
