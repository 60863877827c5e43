"""The snapshot checker (checker/snapshot.py) on real snapshots, corrupted copies and the model.

Real snapshots live in tests/data/snapshots/ (see its README and manifest.json). Every
corrupted copy is derived here from a real set and must be caught by one named rule, or must
raise SnapshotError.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

import spec
import spec.constants as C
from checker.snapshot import (
    CHECKS,
    FREE_LIST_CAP,
    SnapshotError,
    check_snapshots,
    detect_format,
    parse_pagetypeinfo,
    read_live,
    snapshot_from_spec,
)
from spec.rules import RULES

DATA = Path(__file__).resolve().parent.parent / "data" / "snapshots"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
SETS = sorted(MANIFEST["sets"])
KINDS = ("pagetypeinfo", "buddyinfo", "zoneinfo", "vmstat")


def load(name: str) -> dict[str, str]:
    return {kind: (DATA / name / kind).read_text() for kind in KINDS}


def texts(files: dict[str, str]) -> list[str]:
    return [files[k] for k in KINDS if k in files]


def drift_of(name: str) -> int:
    return int(MANIFEST["sets"][name]["drift"])


def rules_of(files: dict[str, str], drift: int | None) -> set[str]:
    return {v["rule"] for v in check_snapshots(texts(files), drift=drift).violations}


# --- editing helpers (each asserts that it changed something) -------------------------------


def _sub(text: str, pattern: str, repl: str | Callable[[re.Match[str]], str],
         flags: int = re.MULTILINE) -> str:
    new, n = re.subn(pattern, repl, text, count=1, flags=flags)
    assert n == 1, f"pattern {pattern!r} not found"
    return new


def zone_block(text: str, zone: str) -> tuple[int, int]:
    """Start and end offsets of a zone's block in zoneinfo."""
    m = re.search(rf"^Node 0, zone +{zone}\n", text, re.MULTILINE)
    assert m
    nxt = re.search(r"^Node \d+, zone", text[m.end():], re.MULTILINE)
    return m.start(), m.end() + nxt.start() if nxt else len(text)


def edit_zone(text: str, zone: str, pattern: str,
              repl: str | Callable[[re.Match[str]], str]) -> str:
    a, b = zone_block(text, zone)
    return text[:a] + _sub(text[a:b], pattern, repl) + text[b:]


def zone_value(text: str, zone: str, key: str) -> int:
    a, b = zone_block(text, zone)
    m = re.search(rf"^ *{re.escape(key)}:? +(\d+)$", text[a:b], re.MULTILINE)
    assert m, key
    return int(m.group(1))


def set_zone_value(text: str, zone: str, key: str, value: int | str) -> str:
    return edit_zone(text, zone, rf"^( *{re.escape(key)}:? +)\d+$",
                     lambda m: f"{m.group(1)}{value}")


def set_cell(text: str, row_prefix: str, column: int, value: str) -> str:
    """Replace column ``column`` (0-based, after the row's label) of a whitespace table row."""
    def repl(m: re.Match[str]) -> str:
        cells = m.group(2).split()
        cells[column] = value
        return m.group(1) + " " + "".join(f"{c:>6s} " for c in cells)
    return _sub(text, rf"^({re.escape(row_prefix)})((?: +\S+)+) *$", repl)


def pt_row(zone: str, mt: str) -> str:
    return f"Node    0, zone {zone:>8s}, type {mt:>12s}"


def buddy_row(zone: str) -> str:
    return f"Node 0, zone {zone:>8s}"


def cell(text: str, row_prefix: str, column: int) -> int:
    m = re.search(rf"^{re.escape(row_prefix)}((?: +\S+)+) *$", text, re.MULTILINE)
    assert m
    return int(m.group(1).split()[column])


# --- the rule registry ----------------------------------------------------------------------


def test_rules_are_registered_with_text_and_anchor() -> None:
    ids = [rule_id for rule_id, _ in CHECKS]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    for rule_id in ids:
        assert 100 <= int(rule_id.rsplit("-", 1)[1]) <= 139
        r = RULES[rule_id]
        assert r.text and "@ v6.18" in r.anchor and r.module == "checker.snapshot"


# --- real snapshots -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_real_snapshot_passes(name: str) -> None:
    files = load(name)
    for kind, text in files.items():
        assert detect_format(text) == kind
    structural = check_snapshots(texts(files))
    assert structural.violations == []
    assert structural.formats == list(KINDS)
    counted = check_snapshots(texts(files), drift=drift_of(name))
    assert counted.violations == []
    # Without a drift bound the rules comparing counts across reads are not claimed.
    cross = {"ALLOC-INV-114", "ALLOC-INV-115", "ALLOC-INV-116", "ALLOC-INV-117",
             "ALLOC-INV-118"}
    assert not cross & set(structural.checked)
    assert cross <= set(counted.checked)
    # Every structural rule ran on the real files and found nothing.
    assert STRUCTURAL_RULES <= set(structural.checked)


#: The rules that need one consistent read of each file, not a drift bound.
STRUCTURAL_RULES = {"ALLOC-INV-100", "ALLOC-INV-101", "ALLOC-INV-102", "ALLOC-INV-103",
                    "ALLOC-INV-104", "ALLOC-INV-105", "ALLOC-INV-106", "ALLOC-INV-107",
                    "ALLOC-INV-108", "ALLOC-INV-109", "ALLOC-INV-110", "ALLOC-INV-111",
                    "ALLOC-INV-112", "ALLOC-INV-113", "ALLOC-INV-120"}


@pytest.mark.parametrize("name", SETS)
def test_each_real_file_alone_passes(name: str) -> None:
    for text in load(name).values():
        assert check_snapshots([text], drift=drift_of(name)).violations == []


def test_real_pagetypeinfo_parses_as_printed() -> None:
    pt = parse_pagetypeinfo(load("after-compact")["pagetypeinfo"])
    (node,) = pt.nodes
    assert (node.pageblock_order, node.pages_per_block) == (9, 512)
    assert node.order_header == tuple(range(11))
    assert node.migratetypes == node.block_types
    assert [z.zone for z in node.zones] == ["DMA", "DMA32", "Normal"]
    assert node.zones[0].blocks["Movable"] == 7


def test_capped_free_list_is_a_lower_bound() -> None:
    files = load("after-compact")
    pt = set_cell(files["pagetypeinfo"], pt_row("DMA32", "Movable"), 0, f">{FREE_LIST_CAP}")
    parsed = parse_pagetypeinfo(pt)
    assert ("Movable", 0) in parsed.nodes[0].zones[1].capped
    assert check_snapshots(texts(files | {"pagetypeinfo": pt})).violations == []


# --- corrupted copies, each caught by a named rule --------------------------------------------


def _bump_cell(f: dict[str, str]) -> dict[str, str]:
    row = pt_row("Normal", "Movable")
    return f | {"pagetypeinfo": set_cell(f["pagetypeinfo"], row, 3,
                                         str(cell(f["pagetypeinfo"], row, 3) + 5000))}


def _bump_buddy(f: dict[str, str]) -> dict[str, str]:
    row = buddy_row("Normal")
    return f | {"buddyinfo": set_cell(f["buddyinfo"], row, 10,
                                      str(cell(f["buddyinfo"], row, 10) + 1000))}


def _swap_watermarks(f: dict[str, str]) -> dict[str, str]:
    z = f["zoneinfo"]
    lo, hi = zone_value(z, "Normal", "min"), zone_value(z, "Normal", "high")
    z = set_zone_value(set_zone_value(z, "Normal", "min", hi), "Normal", "high", lo)
    return f | {"zoneinfo": z}


def _protection(zone: str, value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        return f | {"zoneinfo": edit_zone(f["zoneinfo"], zone, r"protection: \(.*\)$",
                                          f"protection: ({value})")}
    return edit


def _zone_value(zone: str, key: str, value: Callable[[str], int | str]
                ) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        return f | {"zoneinfo": set_zone_value(f["zoneinfo"], zone, key, value(f["zoneinfo"]))}
    return edit


def _free_above_managed(f: dict[str, str]) -> dict[str, str]:
    z = f["zoneinfo"]
    value = zone_value(z, "Normal", "managed") + 10000
    z = set_zone_value(set_zone_value(z, "Normal", "pages free", value),
                       "Normal", "nr_free_pages", value)
    return f | {"zoneinfo": z}


def _blocks_above_free(f: dict[str, str]) -> dict[str, str]:
    z = f["zoneinfo"]
    value = (zone_value(z, "Normal", "nr_free_pages") // 512 + 20) * 512
    return f | {"zoneinfo": set_zone_value(z, "Normal", "nr_free_pages_blocks", value)}


def _pageset(key: str, value: int) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        return f | {"zoneinfo": edit_zone(f["zoneinfo"], "Normal", rf"^( *{key}: +)\d+$",
                                          lambda m: f"{m.group(1)}{value}")}
    return edit


def _buddy_cell(value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        return f | {"buddyinfo": set_cell(f["buddyinfo"], buddy_row("DMA32"), 2, value)}
    return edit


def _pt_cell(value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        return f | {"pagetypeinfo": set_cell(f["pagetypeinfo"], pt_row("DMA", "Unmovable"), 1,
                                             value)}
    return edit


def _drop_last_buddy_column(f: dict[str, str]) -> dict[str, str]:
    lines = [" ".join(line.split()[:-1]) + " " for line in f["buddyinfo"].splitlines()]
    return f | {"buddyinfo": "\n".join(lines) + "\n"}


def _drop_buddy_zone(f: dict[str, str]) -> dict[str, str]:
    return f | {"buddyinfo": _sub(f["buddyinfo"], r"^Node 0, zone +DMA .*\n", "")}


def _inflate_blocks(f: dict[str, str]) -> dict[str, str]:
    return f | {"pagetypeinfo": _sub(f["pagetypeinfo"],
                                     r"^(Node 0, zone +Normal +\d+ +)\d+", r"\g<1>20000")}


def _vmstat_free(f: dict[str, str]) -> dict[str, str]:
    return f | {"vmstat": _sub(f["vmstat"], r"^nr_free_pages (\d+)$",
                               lambda m: f"nr_free_pages {int(m.group(1)) + 1000000}")}


def _highatomic_without_blocks(f: dict[str, str]) -> dict[str, str]:
    # 150 free order-10 buddies moved from the Movable to the HighAtomic lists of a zone with
    # no HighAtomic pageblock: every per-order sum and page total still agrees.
    pt = f["pagetypeinfo"]
    movable, highatomic = pt_row("Normal", "Movable"), pt_row("Normal", "HighAtomic")
    pt = set_cell(pt, movable, 10, str(cell(pt, movable, 10) - 150))
    pt = set_cell(pt, highatomic, 10, str(cell(pt, highatomic, 10) + 150))
    return f | {"pagetypeinfo": pt}


def _mixed_table(normal_reclaimable: int) -> Callable[[dict[str, str]], dict[str, str]]:
    def edit(f: dict[str, str]) -> dict[str, str]:
        names = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
        table = "\n" + f"{'Number of mixed blocks ':<23s}" + "".join(f"{n:>12s} "
                                                                       for n in names) + "\n"
        for zone in ("DMA", "DMA32", "Normal"):
            counts = [0, 1, normal_reclaimable if zone == "Normal" else 0, 0, 0]
            table += f"Node 0, zone {zone:>8s} " + "".join(f"{c:12d} " for c in counts) + "\n"
        return f | {"pagetypeinfo": f["pagetypeinfo"] + table}
    return edit


def _rename_block_type(f: dict[str, str]) -> dict[str, str]:
    return f | {"pagetypeinfo": _sub(f["pagetypeinfo"], r"^(Number of blocks type .*)Isolate",
                                     r"\g<1>Foobar")}


def _pages_per_block(f: dict[str, str]) -> dict[str, str]:
    return f | {"pagetypeinfo": _sub(f["pagetypeinfo"], r"^Pages per block: +512$",
                                     "Pages per block:  511")}


CORRUPTIONS: dict[str, tuple[Callable[[dict[str, str]], dict[str, str]], bool, str]] = {
    # name: (edit, needs the drift bound, the rule that must catch it)
    "negative buddyinfo count": (_buddy_cell("-3"), False, "ALLOC-INV-100"),
    "cap marker other than >100000": (_pt_cell(">5"), False, "ALLOC-INV-100"),
    "plain count at the cap": (_pt_cell(str(FREE_LIST_CAP)), False, "ALLOC-INV-100"),
    "node_unreclaimable not a bool": (
        _zone_value("Normal", "node_unreclaimable", lambda z: 7), False, "ALLOC-INV-100"),
    "pages per block not 2^order": (_pages_per_block, False, "ALLOC-INV-101"),
    "buddyinfo one order short": (_drop_last_buddy_column, False, "ALLOC-INV-102"),
    "buddyinfo misses a zone": (_drop_buddy_zone, False, "ALLOC-INV-103"),
    "block table names another type": (_rename_block_type, False, "ALLOC-INV-103"),
    "min and high swapped": (_swap_watermarks, False, "ALLOC-INV-104"),
    "protection decreases": (_protection("DMA", "0, 3019, 1000, 4171, 4171"), False,
                             "ALLOC-INV-105"),
    "protection non-zero at own index": (_protection("DMA32", "0, 5, 1152, 1152, 1152"), False,
                                         "ALLOC-INV-105"),
    "present above spanned": (_zone_value("DMA32", "present", lambda z: 2000000), False,
                              "ALLOC-INV-106"),
    "more pageblocks than the span": (_inflate_blocks, False, "ALLOC-INV-107"),
    "free above managed": (_free_above_managed, False, "ALLOC-INV-108"),
    "two free readings differ": (
        _zone_value("Normal", "nr_free_pages",
                    lambda z: zone_value(z, "Normal", "pages free") + 1000), False,
        "ALLOC-INV-109"),
    "nr_free_pages_blocks above nr_free_pages": (_blocks_above_free, False, "ALLOC-INV-110"),
    "nr_free_pages_blocks not whole blocks": (
        _zone_value("Normal", "nr_free_pages_blocks",
                    lambda z: zone_value(z, "Normal", "nr_free_pages_blocks") - 1), False,
        "ALLOC-INV-111"),
    "vm stats threshold above 125": (_pageset("vm stats threshold", 200), False,
                                     "ALLOC-INV-112"),
    "pcp batch 0": (_pageset("batch", 0), False, "ALLOC-INV-113"),
    "pagetypeinfo cell breaks the sum": (_bump_cell, True, "ALLOC-INV-114"),
    "buddyinfo count breaks the sum": (_bump_buddy, True, "ALLOC-INV-114"),
    "buddyinfo pages disagree with pages free": (_bump_buddy, True, "ALLOC-INV-115"),
    "buddyinfo large buddies disagree with nr_free_pages_blocks": (_bump_buddy, True,
                                                                   "ALLOC-INV-116"),
    "vmstat nr_free_pages off the zone sum": (_vmstat_free, True, "ALLOC-INV-117"),
    "free HighAtomic pages without HighAtomic blocks": (_highatomic_without_blocks, True,
                                                        "ALLOC-INV-118"),
    "more mixed blocks than blocks": (_mixed_table(1000), True, "ALLOC-INV-119"),
    "cma above managed": (_zone_value("DMA", "cma", lambda z: 5000), False, "ALLOC-INV-120"),
    "free CMA pages without CMA": (_zone_value("Normal", "nr_free_cma", lambda z: 500), False,
                                   "ALLOC-INV-120"),
}


@pytest.mark.seeded_bug
@pytest.mark.parametrize("base", ["idle", "after-compact"])
@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corruption_is_caught_by_its_rule(case: str, base: str) -> None:
    edit, needs_drift, rule_id = CORRUPTIONS[case]
    files = load(base)
    drift = drift_of(base)
    found = rules_of(edit(files), drift)
    assert rule_id in found, f"{case}: {rule_id} not among {sorted(found)}"
    if not needs_drift:
        assert rule_id in rules_of(edit(files), None)


@pytest.mark.seeded_bug
def test_highatomic_corruption_is_only_a_type_violation() -> None:
    files = load("after-compact")
    assert rules_of(_highatomic_without_blocks(files), drift_of("after-compact")) == {
        "ALLOC-INV-118"}


def test_a_consistent_mixed_table_passes() -> None:
    files = _mixed_table(3)(load("after-compact"))
    report = check_snapshots(texts(files), drift=drift_of("after-compact"))
    assert report.violations == [] and "ALLOC-INV-119" in report.checked


# --- unreadable, garbage and truncated input -------------------------------------------------


def _truncations() -> dict[str, Callable[[dict[str, str]], list[str]]]:
    def pt_lines(f: dict[str, str], keep: int) -> list[str]:
        return ["\n".join(f["pagetypeinfo"].split("\n")[:keep]) + "\n"]

    def without_line(kind: str, zone: str, key: str) -> Callable[[dict[str, str]], list[str]]:
        def cut(f: dict[str, str]) -> list[str]:
            text = f[kind]
            a, b = zone_block(text, zone)
            return [text[:a] + _sub(text[a:b], rf"^ *{key} +\d+\n", "") + text[b:]]
        return cut

    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(512)).decode("latin-1")
    return {
        "pagetypeinfo cut in the free table": lambda f: pt_lines(f, 12),
        "pagetypeinfo cut before the block table": lambda f: pt_lines(f, 20),
        "pagetypeinfo cut in the block table": lambda f: pt_lines(f, 22),
        "pagetypeinfo cut mid-line": lambda f: [f["pagetypeinfo"][:700]],
        "pagetypeinfo row short of orders": lambda f: [_sub(
            f["pagetypeinfo"], r"^(Node +0, zone +DMA32, type +Movable.*?) +\d+ *$", r"\1")],
        "pagetypeinfo cell not a number": lambda f: [set_cell(
            f["pagetypeinfo"], pt_row("DMA", "Movable"), 2, "12a")],
        "zoneinfo zone without its watermark lines": without_line("zoneinfo", "Normal", "low"),
        "zoneinfo zone without min": without_line("zoneinfo", "DMA", "min"),
        "zoneinfo cut after a whole zone": lambda f: [
            f["zoneinfo"][:zone_block(f["zoneinfo"], "Movable")[0]]],
        "zoneinfo populated zone cut before start_pfn": lambda f: [
            f["zoneinfo"][:f["zoneinfo"].index("  start_pfn:")]],
        "zoneinfo cut mid-line": lambda f: [f["zoneinfo"][:1500]],
        "buddyinfo line with too few columns": lambda f: [_sub(
            f["buddyinfo"], r"^(Node 0, zone +DMA32(?: +\d+){6}).*$", r"\1 ")],
        "buddyinfo cut mid-line": lambda f: [f["buddyinfo"][:-30]],
        "vmstat cut at a line end": lambda f: [
            "\n".join(f["vmstat"].split("\n")[:40]) + "\n"],
        "binary garbage": lambda f: [garbage],
        "NUL bytes": lambda f: ["\x00" * 64],
        "empty file": lambda f: [""],
        "blank file": lambda f: ["\n\n  \n"],
        "unknown text": lambda f: ["hello world\n"],
        "two buddyinfo snapshots": lambda f: [f["buddyinfo"], f["buddyinfo"]],
    }


TRUNCATIONS = _truncations()


@pytest.mark.parametrize("case", sorted(TRUNCATIONS))
def test_bad_input_raises_snapshot_error(case: str) -> None:
    bad = TRUNCATIONS[case](load("after-compact"))
    with pytest.raises(SnapshotError) as info:
        check_snapshots(bad)
    message = str(info.value)
    assert message and "\n" not in message


@pytest.mark.parametrize("kind", KINDS)
def test_random_damage_is_a_report_or_a_snapshot_error(kind: str) -> None:
    """Cuts and character edits never escape as anything but SnapshotError."""
    rng = random.Random(kind)
    files = load("after-compact")
    text = files[kind]
    others = [files[k] for k in KINDS if k != kind]
    damaged = [text[:rng.randrange(len(text))] + rng.choice(("", "\n")) for _ in range(60)]
    for _ in range(120):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice("0123456789 -:>,()\nabcXYZ\t")
        damaged.append("".join(chars))
    for variant in damaged:
        try:
            report = check_snapshots([variant, *others], drift=64)
        except SnapshotError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert json.dumps(report.to_json())


def test_truncation_messages_say_truncated() -> None:
    f = load("idle")
    for cut in ("pagetypeinfo cut in the free table", "zoneinfo cut after a whole zone",
                "zoneinfo zone without its watermark lines", "buddyinfo cut mid-line"):
        with pytest.raises(SnapshotError, match="truncated"):
            check_snapshots(TRUNCATIONS[cut](f))


def test_negative_drift_is_refused() -> None:
    with pytest.raises(SnapshotError):
        check_snapshots(texts(load("idle")), drift=-1)


# --- the model, rendered in the kernel's formats ----------------------------------------------

GFPS = (C.GFP_KERNEL, C.GFP_HIGHUSER_MOVABLE, C.GFP_ATOMIC, C.GFP_NOWAIT,
        C.GFP_KERNEL | C.__GFP_RECLAIMABLE, C.GFP_TRANSHUGE_LIGHT)


def spec_workload(config: spec.ZoneConfig, steps: int, seed: int) -> list[spec.Zone]:
    """A seeded mix of allocations, frees, drains and isolation; every state along the way."""
    rng = random.Random(seed)
    z = spec.init_zone(config)
    states = [z]
    live: list[tuple[int, int]] = []
    orders = tuple(o for o in (0, 0, 1, 2, 3, config.pageblock_order)
                   if o <= config.max_page_order)
    for _ in range(steps):
        r = rng.random()
        cpu = rng.randrange(config.nr_cpus)
        if r < 0.6 or not live:
            order = rng.choice(orders)
            z, pfn = spec.alloc_pages(z, rng.choice(GFPS), order, cpu)
            if pfn is not None:
                live.append((pfn, order))
        elif r < 0.9:
            pfn, order = live.pop(rng.randrange(len(live)))
            z, _ = spec.free_pages(z, pfn, order, cpu)
        elif r < 0.95:
            z, _ = spec.drain_pages(z, cpu)
        else:
            z, _ = spec.isolate_pageblock(z, rng.randrange(config.nr_pageblocks))
        states.append(z)
    return states


SPEC_CONFIGS = {
    "default": spec.ZoneConfig(),
    "tiny": spec.ZoneConfig(nr_pageblocks=4, max_page_order=3, pageblock_order=2,
                            hpage_pmd_order=2),
    "typed": spec.ZoneConfig(pageblock_types=(0, 1, 1, 2, 3, 4, 1, 1), lowmem_reserve=300,
                             zone_start_pfn=1 << 10),
}


@pytest.mark.parametrize("name", sorted(SPEC_CONFIGS))
def test_spec_snapshots_pass(name: str) -> None:
    for z in spec_workload(SPEC_CONFIGS[name], steps=60, seed=1)[::6]:
        rendered = snapshot_from_spec(z, with_vmstat=True)
        assert [detect_format(t) for t in rendered] == list(KINDS)
        report = check_snapshots(rendered, drift=0)
        assert report.violations == [], report.violations
        assert len(report.checked) >= 19


def test_spec_rendering_has_kernel_layout() -> None:
    pt, bi, zi = snapshot_from_spec(spec.init_zone(spec.ZoneConfig()))
    assert pt.startswith("Page block order: 9\nPages per block:  512\n\n"
                         "Free pages count per migrate type at order       0      1 ")
    assert "Node    0, zone   Normal, type      Movable      0 " in pt
    assert "\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic" in pt
    assert bi == "Node 0, zone   Normal " + "     0 " * 10 + "     4 \n"
    assert zi.startswith("Node 0, zone   Normal\n  pages free     4096\n        boost    0\n")


@pytest.mark.seeded_bug
def test_spec_counter_bugs_are_caught_exactly() -> None:
    z = spec_workload(SPEC_CONFIGS["default"], steps=40, seed=3)[-1]
    off_by_one = attrs.evolve(z, nr_free_pages=z.nr_free_pages + 1)
    assert "ALLOC-INV-115" in rules_of_texts(snapshot_from_spec(off_by_one), drift=0)
    bad_nr_free = attrs.evolve(z, nr_free=(z.nr_free[0] + 1,) + z.nr_free[1:])
    assert "ALLOC-INV-114" in rules_of_texts(snapshot_from_spec(bad_nr_free), drift=0)


def rules_of_texts(rendered: list[str], drift: int | None) -> set[str]:
    return {v["rule"] for v in check_snapshots(rendered, drift=drift).violations}


# --- the live kernel --------------------------------------------------------------------------


@pytest.mark.kernel
def test_live_kernel_snapshot() -> None:
    if not os.access("/proc/pagetypeinfo", os.R_OK):
        pytest.skip("/proc/pagetypeinfo is not readable (needs root)")
    live = read_live()
    report = check_snapshots(live)
    assert sorted(report.formats) == sorted(KINDS)
    assert report.violations == [], report.violations


def test_two_node_snapshot_passes() -> None:
    """Each node repeats the pagetypeinfo sections and its zones in the other files."""
    f = load("after-compact")

    def node1(text: str) -> str:
        return re.sub(r"^Node( +)0,", r"Node\g<1>1,", text, flags=re.MULTILINE)

    def doubled(m: re.Match[str]) -> str:
        return f"{m.group(1)} {2 * int(m.group(2))}"

    two = {"pagetypeinfo": f["pagetypeinfo"] + node1(f["pagetypeinfo"]),
           "buddyinfo": f["buddyinfo"] + node1(f["buddyinfo"]),
           "zoneinfo": f["zoneinfo"] + node1(f["zoneinfo"]),
           "vmstat": re.sub(r"^(nr_free_pages|nr_free_pages_blocks) (\d+)$", doubled,
                            f["vmstat"], flags=re.MULTILINE)}
    assert [n.node for n in parse_pagetypeinfo(two["pagetypeinfo"]).nodes] == [0, 1]
    report = check_snapshots(texts(two), drift=drift_of("after-compact"))
    assert report.violations == [] and "ALLOC-INV-117" in report.checked
    lost = two | {"buddyinfo": f["buddyinfo"]}
    assert rules_of(lost, None) == {"ALLOC-INV-103"}


def test_read_live_skips_unreadable_files(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    f = load("idle")
    (proc / "buddyinfo").write_text(f["buddyinfo"])
    (proc / "vmstat").write_text(f["vmstat"])
    assert read_live(str(tmp_path)) == [f["buddyinfo"], f["vmstat"]]
