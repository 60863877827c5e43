"""The deduplication side channel: distinguishable across domains, noninterference within."""

from __future__ import annotations

import itertools

import pytest

from checker import ksm_sidechannel
from spec import ksm


def test_cross_domain_merge_is_observable_KSM_PROP_001() -> None:
    # By hand: the victim holds "k"; the attacker probes "k" and "j". After ksmd settles,
    # the attacker's "k" page is merged with the victim's (a write faults), "j" is not.
    s = ksm.new_state()
    s, _ = ksm.create_process(s, "victim", ("k",))
    s, _ = ksm.create_process(s, "attacker", ("k", "j"))
    s, _ = ksm.madvise(s, "victim", 0, 1, "mergeable")
    s, _ = ksm.madvise(s, "attacker", 0, 2, "mergeable")
    s, _ = ksm.scan(s)
    assert ksm.write_faults(s, "attacker") == (True, False)


def test_per_domain_policy_hides_the_victim_KSM_PROP_002() -> None:
    for secret in ("k", "j"):
        s = ksm.new_state(per_domain=True)
        s, _ = ksm.create_process(s, "victim", (secret, secret), domain="v")
        s, _ = ksm.create_process(s, "attacker", ("k", "j"), domain="a")
        for name in ("attacker", "victim"):
            s, _ = ksm.madvise(s, name, 0, 2, "mergeable")
        s, rec = ksm.scan(s)
        assert ksm.write_faults(s, "attacker") == (False, False)
        assert rec["pages_sharing"] == 1          # the victim's own pair still merges


def test_exhaustive_analysis_KSM_PROP_001_KSM_PROP_002() -> None:
    r = ksm_sidechannel.analyse(secrets=2, pages=2)
    assert r["ok"] and r["across_domains"]["distinguished"]
    assert r["per_domain"]["noninterference"]
    assert r["configurations"] == 4 * 3 * 2 and r["victim_secrets"] == 4
    assert r["global_counters_per_domain"]["depend_on_secret"]


@pytest.mark.seeded_bug
def test_leaky_policy_is_caught_KSM_PROP_002(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'per-domain' policy that forgets the domain in the tree key must be refuted."""
    monkeypatch.setattr(ksm, "_tree_key", lambda s, mm, content: content)
    r = ksm_sidechannel.analyse(secrets=2, pages=1)
    assert not r["per_domain"]["noninterference"] and not r["ok"]
    ex = r["per_domain"]["counterexample"]
    assert ex["write_faults"][0] != ex["write_faults"][1]


def test_write_faults_count_fork_sharing_and_zero_KSM_PROP_001() -> None:
    s = ksm.new_state({"use_zero_pages": 1})
    s, _ = ksm.create_process(s, "a", ("0", "x", "y"))
    s, _ = ksm.madvise(s, "a", 0, 1, "mergeable")
    s, _ = ksm.scan(s)
    s, _ = ksm.fork(s, "a", "b")
    s, _ = ksm.write(s, "b", 2, "z")
    assert ksm.write_faults(s, "a") == (True, True, False)
    assert list(itertools.islice(ksm.write_faults(s, "b"), 3)) == [True, True, False]
