"""The spec's vocabulary against the kernel: the running kernel's own tables where this
machine exposes them, and committed copies of them everywhere else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import spec.constants as C
from checker import rulebook
from checker.kernel_tables import FormatError, gfp_table_from_format, read_live_gfp_table

DATA = Path(__file__).resolve().parent.parent / "data" / "kernel"


def test_gfp_table_matches_committed_6_18_format_ALLOC_POL_002() -> None:
    table = gfp_table_from_format((DATA / "mm_page_alloc.format").read_text())
    assert table == list(C.GFP_TRACE_NAMES)


@pytest.mark.kernel
def test_gfp_table_matches_live_kernel_ALLOC_POL_002(tracefs: str) -> None:
    assert read_live_gfp_table() == list(C.GFP_TRACE_NAMES)


def test_trace_lines_round_trip_and_migratetype_ALLOC_POL_002_ALLOC_POL_005() -> None:
    lines = (DATA / "mm_page_alloc.trace").read_text().splitlines()
    assert len(lines) >= 10
    for line in lines:
        m = re.search(r"migratetype=(-?\d+) gfp_flags=(\S+)", line)
        assert m, line
        gfp = C.parse_gfp(m.group(2))
        assert C.format_gfp(gfp) == m.group(2)
        # mm_page_alloc's migratetype is gfp_migratetype(gfp) of the request.
        assert C.gfp_migratetype(gfp) == int(m.group(1)), line


def test_format_parser_rejects_garbage() -> None:
    with pytest.raises(FormatError):
        gfp_table_from_format("name: mm_page_alloc\nprint fmt: \"%s\"")
    with pytest.raises(FormatError):
        gfp_table_from_format('__print_flags(REC->gfp_flags, "|", {( unsigned long)'
                              '(__import__("os")), "X"})')


def test_spec_dump_has_the_kernel_values_ALLOC_POL_001_ALLOC_POL_003_ALLOC_POL_004() -> None:
    d = json.loads(json.dumps(rulebook.dump()))
    assert d["migratetypes"] == {"MIGRATE_UNMOVABLE": 0, "MIGRATE_MOVABLE": 1,
                                 "MIGRATE_RECLAIMABLE": 2, "MIGRATE_HIGHATOMIC": 3,
                                 "MIGRATE_CMA": 4, "MIGRATE_ISOLATE": 5}
    assert d["fallbacks"] == {
        "MIGRATE_UNMOVABLE": ["MIGRATE_RECLAIMABLE", "MIGRATE_MOVABLE"],
        "MIGRATE_MOVABLE": ["MIGRATE_RECLAIMABLE", "MIGRATE_UNMOVABLE"],
        "MIGRATE_RECLAIMABLE": ["MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE"]}
    assert d["gfp"]["__GFP_MOVABLE"] == 8 and d["gfp"]["GFP_KERNEL"] == 0xCC0
    assert d["gfp"]["GFP_ATOMIC"] == 0x820 and d["gfp"]["GFP_NOWAIT"] == 0x2800
    assert d["gfp"]["GFP_HIGHUSER_MOVABLE"] == 0x100CCA
    assert d["gfp"]["GFP_TRANSHUGE_LIGHT"] == 0x1C20CA
    assert d["alloc_flags"]["ALLOC_NOFRAGMENT"] == 256
    assert d["alloc_flags"]["ALLOC_HIGHATOMIC"] == 0x200
    assert d["alloc_flags"]["ALLOC_TRYLOCK"] == 0x400
    assert d["alloc_flags"]["ALLOC_KSWAPD"] == C.__GFP_KSWAPD_RECLAIM
    assert d["alloc_flags"]["ALLOC_MIN_RESERVE"] == C.__GFP_HIGH
    assert d["MAX_PAGE_ORDER"] == 10 and d["pageblock_order"] == 9
    assert d["NR_PCP_LISTS"] == 14


# --- the tables against what the kernel publishes ---------------------------------------------

def _pagetypeinfo() -> str:
    return (DATA.parent / "snapshots" / "idle" / "pagetypeinfo").read_text()


def test_tables_match_the_kernel_ALLOC_POL_001_ALLOC_POL_002_ALLOC_POL_003() -> None:
    from checker.kernel_tables import (
        alloc_flag_mismatches,
        gfp_table_mismatches,
        migratetype_mismatches,
    )
    assert gfp_table_mismatches(C.GFP_TRACE_NAMES,
                                (DATA / "mm_page_alloc.format").read_text()) == []
    assert migratetype_mismatches(C.MIGRATETYPE_SHORT_NAMES, _pagetypeinfo()) == []
    assert alloc_flag_mismatches(C.ALLOC_FLAGS, C.GFP_BITS) == []


@pytest.mark.seeded_bug
def test_a_wrong_table_is_caught_ALLOC_POL_001_ALLOC_POL_002_ALLOC_POL_003() -> None:
    from checker.kernel_tables import (
        alloc_flag_mismatches,
        gfp_table_mismatches,
        migratetype_mismatches,
    )
    gfp = dict(C.GFP_TRACE_NAMES)
    gfp["__GFP_HIGH"] <<= 1  # one bit moved
    assert gfp_table_mismatches(tuple(gfp.items()), (DATA / "mm_page_alloc.format").read_text())
    swapped = dict(C.MIGRATETYPE_SHORT_NAMES) | {C.MIGRATE_MOVABLE: "Reclaimable",
                                                 C.MIGRATE_RECLAIMABLE: "Movable"}
    assert migratetype_mismatches(swapped, _pagetypeinfo())
    assert alloc_flag_mismatches(C.ALLOC_FLAGS | {"ALLOC_KSWAPD": 0x1000}, C.GFP_BITS)
    assert alloc_flag_mismatches(C.ALLOC_FLAGS | {"ALLOC_CMA": C.ALLOC_NOFRAGMENT}, C.GFP_BITS)
