"""The live kernel's NUMA-balancing tiering knobs agree with the spec's defaults (read only)."""

from __future__ import annotations

import os

import pytest

from spec.tier_state import TierConfig


def _read(path: str) -> str:
    if not os.access(path, os.R_OK):
        pytest.skip(f"{path} is not readable here")
    with open(path) as f:
        return f.read().strip()


@pytest.mark.kernel
def test_promote_rate_limit_default_TIER_POL_021() -> None:
    # kernel/sched/fair.c: sysctl_numa_balancing_promote_rate_limit = 65536 (MB/s); a
    # machine where someone changed it is not evidence either way.
    value = int(_read("/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps"))
    if value != 65536:
        pytest.skip(f"rate limit set to {value} here, not the default")
    assert TierConfig().promote_rate_limit_MBps == value
    # MB_TO_PAGES with 4 KiB pages: 65536 << 8 pages per second.
    assert TierConfig().rate_limit_pages == 65536 * 256

