"""Shared test set-up: Hypothesis profiles and the live-kernel fixtures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# dev: the default, randomised; ci: derandomised replay with no database (it replays, it
# does not discover); nightly: long discovery runs.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

TRACEFS = "/sys/kernel/tracing"


@pytest.fixture(scope="session")
def tracefs() -> Iterator[str]:
    """tracefs mounted at /sys/kernel/tracing (mounted here, and unmounted after, if needed)."""
    if os.geteuid() != 0:
        pytest.skip("tracefs needs root")
    mounted_here = False
    if not os.path.exists(f"{TRACEFS}/events"):
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount tracefs: {r.stderr.decode().strip()}")
        mounted_here = True
    try:
        yield TRACEFS
    finally:
        if mounted_here:
            subprocess.run(["umount", TRACEFS], capture_output=True)
