"""``mmspec prove``, the registry and the manifest: the contract of the command and the rule
that a change to any verdict or state count is a visible failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import proofs.runner as runner
from checker.cli import main
from spec.rules import RULES, load_all


def test_registry_and_manifest_agree() -> None:
    reg = runner.load_all()
    manifest = runner.read_manifest()
    assert set(reg) == set(manifest), "run 'mmspec prove --all --write-manifest' and review"
    for name, ob in reg.items():
        entry = manifest[name]
        assert entry["expected"] == ob.expected, name
        assert tuple(entry["rules"]) == ob.rules, name
        assert sorted(entry["tags"]) == sorted(ob.tags), name
        assert ("states" in entry) == ("bounded" in ob.tags), name


def test_suite_size_and_rules_exist() -> None:
    reg = runner.load_all()
    load_all()
    assert len(reg) >= 40
    for ob in reg.values():
        assert ob.rules and all(r in RULES for r in ob.rules), ob.name
        assert ob.doc, ob.name
    # every ALLOC invariant has its non-vacuity check and its broken twin
    # (the zone's in proofs/alloc_bounded.py, the slow path's world's in proofs/slowpath.py)
    invs = sorted(r for r in RULES if r.startswith("ALLOC-INV-0"))
    for kind in ("nonvacuity", "twin"):
        for i in invs:
            assert {f"alloc.{kind}.{i}", f"alloc.slowpath.{kind}.{i}"} & set(reg), (kind, i)


def test_prove_json_one_object_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", "alloc.claim", "alloc.gfp", "--json", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    names = [o["name"] for o in obj["obligations"]]
    assert names == ["alloc.claim.half_pageblock", "alloc.claim.movable_block_census",
                     "alloc.claim.should_try", "alloc.gfp.migratetype_pcp",
                     "alloc.gfp.migratetype_any_mask", "alloc.gfp.highatomic_needs_high",
                     "alloc.gfp.variants_differ_only_on_highatomic"]
    for o in obj["obligations"]:
        assert set(o) >= {"name", "rules", "verdict", "expected", "seconds"}
    edge = obj["obligations"][4]
    assert edge["verdict"] == edge["expected"] == "counterexample" and edge["counterexample"]


@pytest.mark.seeded_bug
def test_a_changed_verdict_exits_1_ALLOC_POL_005(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # A manifest that claims the any-mask edge of gfp_migratetype is proved: the run must
    # report the counterexample as unexpected and exit 1.
    data = json.loads(runner.MANIFEST.read_text())
    data["obligations"]["alloc.gfp.migratetype_any_mask"]["expected"] = "proved"
    fake = tmp_path / "manifest.json"
    fake.write_text(json.dumps(data))
    monkeypatch.setattr(runner, "MANIFEST", fake)
    assert main(["prove", "alloc.gfp", "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "UNEXPECTED (expected proved)" in out and "1 unexpected" in out


def test_bad_names_and_jobs_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", "alloc.nosuch"]) == 2
    assert main(["prove", "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mmspec prove: no obligation 'alloc.nosuch' (see 'mmspec prove --list')",
                   "mmspec prove: --jobs must be at least 1"]


def test_list_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["obligations"]
    assert len(listed) == len([o for o in runner.load_all().values() if not o.slow])
    assert all("verdict" not in o for o in listed)
