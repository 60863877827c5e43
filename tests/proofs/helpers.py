"""Running a group of obligations in a test and holding it to ``proofs/manifest.json``."""

from __future__ import annotations

from proofs.runner import Result, read_manifest, run, select


def run_group(*names: str) -> dict[str, Result]:
    """Run the obligations named (or prefixed) by ``names``; fail on any that differs from
    the manifest (verdict or state count) or is missing from it."""
    results = run(select(names), jobs=1)
    manifest = read_manifest()
    for r in results:
        assert r.name in manifest, f"{r.name} is not in proofs/manifest.json"
        assert r.ok, (f"{r.name}: {r.verdict} ({r.detail}), manifest says {r.expected}"
                      f" with {r.expected_states} states, got {r.states}\n{r.counterexample}")
    return {r.name: r for r in results}
