"""mmspec simulate tiering: JSON shape, plot, usage errors."""

from __future__ import annotations

import json

import pytest

from checker.cli import main


def test_json_and_plot(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    png = f"{tmp_path}/hit.png"
    rc = main(["simulate", "tiering", "--json", "--duration", "1", "--footprint", "4096",
               "--policy", "none", "--policy", "pghot-default", "--workload", "hotset-shift",
               "--plot", png])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["accesses_per_s"] > 0
    keys = {"policy", "workload", "fast_tier_hit_ratio", "mean_latency_ns", "promotions",
            "demotions", "ping_pong", "precision", "recall", "recovery_s",
            "metadata_bytes_per_gib"}
    assert [r["policy"] for r in obj["results"]] == ["none", "pghot-default"]
    assert keys <= set(obj["results"][0])
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [
    ["--policy", "lru"], ["--workload", "nope"], ["--duration", "0"],
    ["--plot", "out.svg"], ["--workload", "lackey:/nonexistent/trace"],
])
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["simulate", "tiering", "--duration", "0.1", "--footprint", "2048", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
