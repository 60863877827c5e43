"""Watermark arithmetic against the kernel: /proc/zoneinfo's min/low/high/promo recomputed
from the zones' managed pages and the vm sysctls (ALLOC-POL-010)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from checker.snapshot import ZoneInfo, parse_zoneinfo
from spec.constants import ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK, ALLOC_OOM
from spec.watermark import (
    highatomic_max,
    highmem_min_pages,
    pcp_batch_high,
    reserve_adjusted_min,
    setup_per_zone_wmarks,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "kernel"
HIGH_ZONES = ("HighMem", "Movable")


def expected_watermarks(zi: ZoneInfo, min_free_kbytes: int,
                        scale: int) -> dict[str, tuple[int, int, int, int]]:
    lowmem = sum(z.fields["managed"] for z in zi.zones
                 if z.zone not in HIGH_ZONES + ("Device",))
    out = {}
    for z in zi.zones:
        managed = z.fields["managed"]
        wmin, low, high, promo = setup_per_zone_wmarks(min_free_kbytes, managed, lowmem, scale)
        if z.zone in HIGH_ZONES:
            delta = low - wmin
            wmin = highmem_min_pages(managed)
            low, high, promo = wmin + delta, wmin + 2 * delta, wmin + 3 * delta
        out[z.zone] = (wmin, low, high, promo)
    return out


def observed(zi: ZoneInfo) -> dict[str, tuple[int, int, int, int]]:
    # zoneinfo prints min/low/high/promo including the boost; subtract it.
    return {z.zone: tuple(z.fields[k] - z.fields.get("boost", 0)  # type: ignore[misc]
                          for k in ("min", "low", "high", "promo")) for z in zi.zones}


def test_committed_zoneinfo_watermarks_ALLOC_POL_010() -> None:
    sysctl = json.loads((DATA / "sysctl_vm.json").read_text())
    zi = parse_zoneinfo((DATA / "zoneinfo").read_text())
    assert observed(zi) == expected_watermarks(zi, sysctl["min_free_kbytes"],
                                               sysctl["watermark_scale_factor"])


@pytest.mark.kernel
def test_live_zoneinfo_watermarks_ALLOC_POL_010() -> None:
    if not os.access("/proc/zoneinfo", os.R_OK):
        pytest.skip("/proc/zoneinfo is not readable")
    zi = parse_zoneinfo(open("/proc/zoneinfo").read())
    mfk = int(open("/proc/sys/vm/min_free_kbytes").read())
    wsf = int(open("/proc/sys/vm/watermark_scale_factor").read())
    # Memory initialised lazily can grow between the reads; retry once on a mismatch.
    if observed(zi) != expected_watermarks(zi, mfk, wsf):
        zi = parse_zoneinfo(open("/proc/zoneinfo").read())
    assert observed(zi) == expected_watermarks(zi, mfk, wsf)


def test_reserve_reductions_ALLOC_POL_013() -> None:
    assert reserve_adjusted_min(1000, 0) == 1000
    assert reserve_adjusted_min(1000, ALLOC_NON_BLOCK) == 1000  # GFP_NOWAIT: no reduction
    assert reserve_adjusted_min(1000, ALLOC_MIN_RESERVE) == 500
    assert reserve_adjusted_min(1000, ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK) == 375  # GFP_ATOMIC
    assert reserve_adjusted_min(1000, ALLOC_OOM) == 500


def test_pcp_batch_and_high_ALLOC_POL_011() -> None:
    # A 1 GiB zone on 2 CPUs: batch = rounddown_pow_of_two(64 + 32) - 1 = 63.
    batch, high_min, high_max = pcp_batch_high(262144, 5000, 2, 0)
    assert batch == 63
    assert high_min == 2500 and high_max == 262144 // 8 // 2
    # Tiny zones floor both bounds at batch * 4.
    assert pcp_batch_high(32, 0, 1, 0) == (1, 4, 4)
    assert pcp_batch_high(262144, 5000, 2, 64) == (63, 2048, 2048)


def test_highatomic_bound_ALLOC_INV_009() -> None:
    assert highatomic_max(51200, 512) == 512
    assert highatomic_max(51300, 512) == 1024  # ALIGN rounds 513 up, not 1% + a block


def _pcp_bounds_agree(zi: ZoneInfo) -> list[str]:
    bad = []
    for z in zi.zones:
        for p in z.pagesets:
            if p.high_min is None:
                continue
            want = pcp_batch_high(z.fields["managed"], z.fields["low"] - z.fields.get("boost", 0),
                                  len(z.pagesets), 0)
            if (p.batch, p.high_min, p.high_max) != want:
                bad.append(f"{z.zone} cpu{p.cpu}: {(p.batch, p.high_min, p.high_max)} != {want}")
    return bad


def test_committed_pcp_bounds_ALLOC_POL_011() -> None:
    zi = parse_zoneinfo((DATA / "zoneinfo").read_text())
    assert any(z.pagesets for z in zi.zones)
    assert _pcp_bounds_agree(zi) == []


@pytest.mark.kernel
def test_live_pcp_bounds_ALLOC_POL_011() -> None:
    if int(open("/proc/sys/vm/percpu_pagelist_high_fraction").read()):
        pytest.skip("percpu_pagelist_high_fraction is set on this machine")
    zi = parse_zoneinfo(open("/proc/zoneinfo").read())
    assert _pcp_bounds_agree(zi) == []
