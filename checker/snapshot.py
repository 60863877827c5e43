"""Snapshot conformance: /proc/pagetypeinfo, /proc/buddyinfo, /proc/zoneinfo, /proc/vmstat.

The four files are parsed by content (never by file name) into plain values, and every
statement the kernel guarantees about them is a rule ``ALLOC-INV-1NN`` below. The same checker
runs on the live kernel (:func:`read_live`) and on the model (:func:`snapshot_from_spec`
renders a spec :class:`~spec.zone.Zone` in the kernel's formats).

**Moments.** No two of these files can be read at one moment, and /proc/pagetypeinfo is not
one moment either: ``pagetypeinfo_showfree_print`` drops the zone lock after every (type,
order) cell. What is printed under one zone lock sees that zone's free lists at one moment:
a buddyinfo line, a pagetypeinfo block-count row, a zoneinfo zone (whose counters may still
move by folds of per-CPU diffs). So the checker states three kinds of rule:

* rules about one file, or one zone's lines in it, which hold whenever the kernel printed them;
* structural rules across files (pageblock order, number of orders, the set of populated
  zones, zone spans), which hold between any two reads of one boot without memory hotplug;
* counting rules across reads, which need a bound on what changed between the reads. The
  caller gives it as ``drift``: per zone, at most ``drift`` pages entered, left or moved between
  the free lists and at most ``drift`` pageblocks changed type between any two reads compared
  (including the cells of one pagetypeinfo). ``drift=0`` means "one moment", which only a model
  can produce; ``drift=None`` (the default) means unknown, and these rules are not checked.
  A real kernel gives no such bound; a value is the caller's claim about a quiet machine.

**Counter slack.** ``pages free``, ``nr_free_pages`` and ``nr_free_cma`` are vmstat counters:
each CPU batches updates in a per-CPU diff and folds it into the zone counter once it passes
the CPU's ``vm stats threshold`` (``__mod_zone_page_state``), so a reading may be off the true
value by the pending diffs. Thresholds never exceed 125 (``calculate_normal_threshold``,
``calculate_pressure_threshold``), but kswapd can lower them while diffs are pending, so the
slack of a zone is 125 for every CPU listed with a non-zero threshold (zero for a zone that
lists threshold 0 or none, as a model or a uniprocessor kernel does).
``nr_free_pages_blocks`` has no slack: every update is ``+-2^order`` with ``order >=
pageblock_order``, which passes any threshold at once when ``pageblock_nr_pages > 250``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import attrs

from spec.constants import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    MIGRATETYPE_SHORT_NAMES,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
)
from spec.rules import rule
from spec.watermark import highmem_min_pages
from spec.zone import Zone

ANCHOR_VERSION = "v6.18"
#: ``pagetypeinfo_showfree_print`` stops counting a free list here and prints ``>100000``.
FREE_LIST_CAP = 100000
#: The largest per-CPU vmstat threshold (``calculate_normal_threshold``).
MAX_STAT_THRESHOLD = 125
#: The kernel appends this deprecated counter after the last vmstat item (since 5.8).
VMSTAT_LAST_LINE = "nr_unstable 0"

PROC_FILES = ("/proc/pagetypeinfo", "/proc/buddyinfo", "/proc/zoneinfo", "/proc/vmstat")


class SnapshotError(Exception):
    """A snapshot text is empty, not text, of no known format, malformed or truncated."""


# --- parsed snapshots ----------------------------------------------------------------------


@attrs.frozen
class PageTypeZone:
    """One zone of /proc/pagetypeinfo.

    ``free[mt]`` is the per-order number of blocks on the free list of migratetype name ``mt``;
    a cell in ``capped`` was printed ``>100000`` and holds a lower bound.
    """

    node: int
    zone: str
    free: dict[str, tuple[int, ...]]
    capped: frozenset[tuple[str, int]]
    blocks: dict[str, int]
    mixed: dict[str, int] | None


@attrs.frozen
class PageTypeNode:
    node: int
    pageblock_order: int
    pages_per_block: int
    order_header: tuple[int, ...]
    migratetypes: tuple[str, ...]
    block_types: tuple[str, ...]
    mixed_types: tuple[str, ...] | None
    zones: tuple[PageTypeZone, ...]


@attrs.frozen
class PageTypeInfo:
    nodes: tuple[PageTypeNode, ...]

    def zones(self) -> list[PageTypeZone]:
        return [z for n in self.nodes for z in n.zones]


@attrs.frozen
class BuddyZone:
    node: int
    zone: str
    nr_free: tuple[int, ...]


@attrs.frozen
class BuddyInfo:
    zones: tuple[BuddyZone, ...]


@attrs.frozen
class Pageset:
    """One CPU's ``struct per_cpu_pages`` for a zone, as zoneinfo prints it."""

    cpu: int
    count: int
    high: int
    batch: int
    high_min: int | None
    high_max: int | None
    stat_threshold: int | None


@attrs.frozen
class ZoneInfoZone:
    """One zone of /proc/zoneinfo; ``index`` is its position in the node (its zone index)."""

    node: int
    zone: str
    index: int
    fields: dict[str, int]
    protection: tuple[int, ...]
    stats: dict[str, int]
    pagesets: tuple[Pageset, ...]
    node_unreclaimable: int | None
    start_pfn: int | None

    @property
    def populated(self) -> bool:
        return self.fields["present"] > 0

    def slack(self) -> int:
        """How far a vmstat counter of this zone may be from its true value (module doc)."""
        return sum(MAX_STAT_THRESHOLD for p in self.pagesets if p.stat_threshold)


@attrs.frozen
class ZoneInfo:
    zones: tuple[ZoneInfoZone, ...]


@attrs.frozen
class VmStat:
    values: dict[str, int]


Parsed = PageTypeInfo | BuddyInfo | ZoneInfo | VmStat


@attrs.frozen
class SnapshotSet:
    """The parsed snapshots handed to the checks, at most one of each format."""

    pagetypeinfo: PageTypeInfo | None = None
    buddyinfo: BuddyInfo | None = None
    zoneinfo: ZoneInfo | None = None
    vmstat: VmStat | None = None
    drift: int | None = None

    def pageblock_order(self) -> int | None:
        if self.pagetypeinfo is None or not self.pagetypeinfo.nodes:
            return None
        return self.pagetypeinfo.nodes[0].pageblock_order

    def nr_orders(self) -> int | None:
        if self.pagetypeinfo is not None and self.pagetypeinfo.nodes:
            return len(self.pagetypeinfo.nodes[0].order_header)
        if self.buddyinfo is not None and self.buddyinfo.zones:
            return len(self.buddyinfo.zones[0].nr_free)
        return None

    def zoneinfo_zone(self, node: int, zone: str) -> ZoneInfoZone | None:
        return _find(self.zoneinfo.zones if self.zoneinfo else (), node, zone)

    def buddy_zone(self, node: int, zone: str) -> BuddyZone | None:
        return _find(self.buddyinfo.zones if self.buddyinfo else (), node, zone)

    def pagetype_zone(self, node: int, zone: str) -> PageTypeZone | None:
        return _find(self.pagetypeinfo.zones() if self.pagetypeinfo else (), node, zone)


_Z = TypeVar("_Z", ZoneInfoZone, BuddyZone, PageTypeZone)


def _find(zones: Iterable[_Z], node: int, zone: str) -> _Z | None:
    """The entry of one (node, zone) in a parsed file, if the file has it."""
    return next((z for z in zones if z.node == node and z.zone == zone), None)


@attrs.define
class Report:
    """What was checked (rule IDs) and what was found (``{"rule": ID, "message": text}``)."""

    checked: list[str] = attrs.field(factory=list)
    violations: list[dict[str, str]] = attrs.field(factory=list)
    formats: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "formats": list(self.formats), "checked": list(self.checked),
                "violations": [dict(v) for v in self.violations]}


# --- parsing -------------------------------------------------------------------------------

_ZONE_HEADER = re.compile(r"^Node\s+(\d+), zone\s+(\S+)$")
_BUDDY_LINE = re.compile(r"^Node\s+(\d+), zone\s+(\S+)((?:\s+\S+)+)\s*$")
_PT_ROW = re.compile(r"^Node\s+(\d+), zone\s+(\S+), type\s+(\S+)((?:\s+\S+)+)\s*$")
_VMSTAT_LINE = re.compile(r"^([a-z][a-z0-9_]*) (-?\d+)$")
_NUMBER = re.compile(r"^-?\d+$")


class _Lines:
    """A cursor over a snapshot's lines that reports errors with the file kind and line."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.lines = text.split("\n")[:-1]  # the text ends with "\n" (checked before)
        self.pos = 0

    def error(self, message: str, line: int | None = None) -> SnapshotError:
        where = self.pos if line is None else line
        return SnapshotError(f"{self.kind} line {where + 1}: {message}")

    def eof(self) -> bool:
        return self.pos >= len(self.lines)

    def peek(self) -> str:
        return self.lines[self.pos]

    def next(self, what: str) -> str:
        if self.eof():
            raise SnapshotError(f"{self.kind}: ends before {what} (truncated)")
        line = self.lines[self.pos]
        self.pos += 1
        return line


def _int(lines: _Lines, token: str, what: str) -> int:
    if not _NUMBER.match(token):
        raise lines.error(f"{what}: {token!r} is not a number", lines.pos - 1)
    return int(token)


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line
    return ""


def detect_format(text: str) -> str:
    """``pagetypeinfo``, ``buddyinfo``, ``zoneinfo`` or ``vmstat``, by content."""
    if not text.strip():
        raise SnapshotError("empty snapshot")
    bad = next((c for c in text if (ord(c) < 32 and c not in "\n\t") or c == "\ufffd"), None)
    if bad is not None:
        raise SnapshotError(f"binary data (character {ord(bad):#x}), not a /proc text snapshot")
    first = _first_line(text).rstrip()
    if first.startswith("Page block order:"):
        return "pagetypeinfo"
    if _ZONE_HEADER.match(first):
        return "zoneinfo"
    if _BUDDY_LINE.match(first):
        return "buddyinfo"
    if _VMSTAT_LINE.match(first):
        return "vmstat"
    shown = first if len(first) <= 60 else first[:57] + "..."
    raise SnapshotError(f"unrecognised snapshot format; first line is {shown!r}")


def _require_final_newline(kind: str, text: str) -> None:
    if not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        shown = last if len(last) <= 40 else "..." + last[-37:]
        raise SnapshotError(f"{kind}: last line {shown!r} has no newline (truncated)")


def _counts(lines: _Lines, tokens: list[str], what: str,
            allow_cap: bool = False) -> tuple[list[int], set[int]]:
    values: list[int] = []
    capped: set[int] = set()
    for i, tok in enumerate(tokens):
        if allow_cap and tok.startswith(">"):
            capped.add(i)
            tok = tok[1:]
        values.append(_int(lines, tok, what))
    return values, capped


def parse_pagetypeinfo(text: str) -> PageTypeInfo:
    """Parse /proc/pagetypeinfo (``pagetypeinfo_show`` in mm/vmstat.c), one section per node."""
    _require_final_newline("pagetypeinfo", text)
    lines = _Lines("pagetypeinfo", text)
    nodes: list[PageTypeNode] = []
    while not lines.eof():
        if not lines.peek().strip():
            lines.pos += 1
            continue
        nodes.append(_parse_pagetype_node(lines))
    if not nodes:
        raise SnapshotError("pagetypeinfo: no node sections")
    return PageTypeInfo(tuple(nodes))


def _header_value(lines: _Lines, prefix: str) -> int:
    line = lines.next(repr(prefix))
    if not line.startswith(prefix):
        raise lines.error(f"expected {prefix!r}, found {line.strip()[:40]!r}", lines.pos - 1)
    return _int(lines, line[len(prefix):].strip(), prefix)


def _parse_pagetype_node(lines: _Lines) -> PageTypeNode:
    pageblock_order = _header_value(lines, "Page block order:")
    pages_per_block = _header_value(lines, "Pages per block:")
    while not lines.eof() and not lines.peek().strip():
        lines.pos += 1
    header = lines.next("the free-page table header")
    prefix = "Free pages count per migrate type at order"
    if not header.startswith(prefix):
        raise lines.error(f"expected {prefix!r}", lines.pos - 1)
    order_header = tuple(_int(lines, t, "order header") for t in header[len(prefix):].split())
    if not order_header:
        raise lines.error("free-page table header lists no orders", lines.pos - 1)
    nr_orders = len(order_header)

    # Free table: rows grouped by zone, one row per migratetype.
    zone_rows: list[tuple[int, str, list[tuple[str, list[int], set[int]]]]] = []
    while not lines.eof() and lines.peek().strip():
        line = lines.next("a free-page row")
        m = _PT_ROW.match(line)
        if not m:
            raise lines.error(f"malformed free-page row {line.strip()[:50]!r}", lines.pos - 1)
        node, zone, mt = int(m.group(1)), m.group(2), m.group(3)
        tokens = m.group(4).split()
        if len(tokens) != nr_orders:
            raise lines.error(f"node {node} zone {zone} type {mt}: {len(tokens)} order columns,"
                              f" header has {nr_orders} (truncated?)", lines.pos - 1)
        values, capped = _counts(lines, tokens, f"zone {zone} type {mt}", allow_cap=True)
        if not zone_rows or zone_rows[-1][:2] != (node, zone):
            zone_rows.append((node, zone, []))
        zone_rows[-1][2].append((mt, values, capped))
    if not zone_rows:
        raise SnapshotError("pagetypeinfo: free-page table has no rows (truncated)")
    migratetypes = tuple(mt for mt, _, _ in zone_rows[0][2])
    for node, zone, rows in zone_rows:
        names = tuple(mt for mt, _, _ in rows)
        if names != migratetypes:
            raise SnapshotError(f"pagetypeinfo: node {node} zone {zone} lists migratetypes "
                                f"{', '.join(names)}, the first zone {', '.join(migratetypes)}"
                                " (truncated?)")

    block_types, blocks = _parse_type_table(lines, "Number of blocks type", zone_rows)
    if blocks is None or block_types is None:
        raise SnapshotError("pagetypeinfo: ends before the 'Number of blocks type' table"
                            " (truncated)")
    mixed_types, mixed = _parse_type_table(lines, "Number of mixed blocks", zone_rows)

    zones = []
    for i, (node, zone, rows) in enumerate(zone_rows):
        zones.append(PageTypeZone(
            node=node, zone=zone,
            free={mt: tuple(values) for mt, values, _ in rows},
            capped=frozenset((mt, o) for mt, _, cap in rows for o in cap),
            blocks=dict(zip(block_types, blocks[i], strict=False)),
            mixed=None if mixed is None or mixed_types is None
            else dict(zip(mixed_types, mixed[i], strict=False))))
    return PageTypeNode(node=zone_rows[0][0], pageblock_order=pageblock_order,
                        pages_per_block=pages_per_block, order_header=order_header,
                        migratetypes=migratetypes, block_types=block_types,
                        mixed_types=mixed_types, zones=tuple(zones))


def _parse_type_table(lines: _Lines, title: str, zone_rows: list[Any]
                      ) -> tuple[tuple[str, ...] | None, list[list[int]] | None]:
    """A per-zone, per-migratetype table (block counts or mixed counts), if it comes next."""
    start = lines.pos
    while not lines.eof() and not lines.peek().strip():
        lines.pos += 1
    if lines.eof() or not lines.peek().startswith(title):
        lines.pos = start
        return None, None
    header = lines.next(title)
    types = tuple(header[len(title):].split())
    if not types:
        raise lines.error(f"{title!r} header lists no migratetypes", lines.pos - 1)
    rows: list[list[int]] = []
    for node, zone, _ in zone_rows:
        line = lines.next(f"the {title!r} row of node {node} zone {zone}")
        m = _BUDDY_LINE.match(line)
        if not m or (int(m.group(1)), m.group(2)) != (node, zone):
            raise lines.error(f"expected the {title!r} row of node {node} zone {zone}, found "
                              f"{line.strip()[:50]!r}", lines.pos - 1)
        tokens = m.group(3).split()
        if len(tokens) != len(types):
            raise lines.error(f"{title!r} row of zone {zone} has {len(tokens)} columns, the "
                              f"header {len(types)} (truncated?)", lines.pos - 1)
        rows.append(_counts(lines, tokens, f"{title} zone {zone}")[0])
    return types, rows


def parse_buddyinfo(text: str) -> BuddyInfo:
    """Parse /proc/buddyinfo (``frag_show_print``): per zone, ``nr_free`` of every order."""
    _require_final_newline("buddyinfo", text)
    lines = _Lines("buddyinfo", text)
    zones: list[BuddyZone] = []
    while not lines.eof():
        line = lines.next("a zone line")
        if not line.strip():
            continue
        m = _BUDDY_LINE.match(line)
        if not m:
            raise lines.error(f"malformed line {line.strip()[:50]!r}", lines.pos - 1)
        tokens = m.group(3).split()
        values = _counts(lines, tokens, f"zone {m.group(2)}")[0]
        if zones and len(values) != len(zones[0].nr_free):
            raise lines.error(f"zone {m.group(2)} has {len(values)} order columns, zone "
                              f"{zones[0].zone} has {len(zones[0].nr_free)} (truncated?)",
                              lines.pos - 1)
        zones.append(BuddyZone(int(m.group(1)), m.group(2), tuple(values)))
    return BuddyInfo(tuple(zones))


_ZONE_FIELDS = ("boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma")
_REQUIRED_FIELDS = ("free", "min", "low", "high", "spanned", "present", "managed")
_PCP_FIELDS = ("count", "high", "batch", "high_min", "high_max")


def parse_zoneinfo(text: str) -> ZoneInfo:
    """Parse /proc/zoneinfo (``zoneinfo_show_print``): every zone of every node."""
    _require_final_newline("zoneinfo", text)
    lines = _Lines("zoneinfo", text)
    zones: list[ZoneInfoZone] = []
    while not lines.eof():
        if not lines.peek().strip():
            lines.pos += 1
            continue
        line = lines.next("a zone header")
        m = _ZONE_HEADER.match(line.rstrip())
        if not m:
            raise lines.error(f"expected 'Node N, zone NAME', found {line.strip()[:50]!r}",
                              lines.pos - 1)
        node, name = int(m.group(1)), m.group(2)
        index = sum(1 for z in zones if z.node == node)
        zones.append(_parse_zoneinfo_zone(lines, node, name, index))
    _check_zoneinfo_complete(zones)
    return ZoneInfo(tuple(zones))


def _parse_zoneinfo_zone(lines: _Lines, node: int, name: str, index: int) -> ZoneInfoZone:
    fields: dict[str, int] = {}
    stats: dict[str, int] = {}
    protection: tuple[int, ...] | None = None
    pagesets: list[dict[str, int]] = []
    in_pagesets = False
    tail: dict[str, int] = {}
    start = lines.pos
    while not lines.eof() and not _ZONE_HEADER.match(lines.peek().rstrip()):
        line = lines.next("a zone line")
        text = line.strip()
        if not text or text == "per-node stats":
            continue
        if text.startswith("protection:"):
            m = re.match(r"^protection: \(([-\d, ]*)\)$", text)
            if not m:
                raise lines.error(f"zone {name}: malformed protection line", lines.pos - 1)
            protection = tuple(_int(lines, t.strip(), "protection")
                               for t in m.group(1).split(","))
            continue
        if text == "pagesets":
            in_pagesets = True
            continue
        key, _, value = text.rpartition(" ")
        key = key.strip().rstrip(":").strip()
        if not key:
            raise lines.error(f"zone {name}: malformed line {text[:50]!r}", lines.pos - 1)
        number = _int(lines, value, f"zone {name} {key}")
        if key == "pages free":
            fields["free"] = number
        elif key in _ZONE_FIELDS and protection is None and "free" in fields:
            fields[key] = number
        elif key == "cpu" and in_pagesets:
            pagesets.append({"cpu": number})
        elif key in _PCP_FIELDS and pagesets:
            pagesets[-1][key] = number
        elif key == "vm stats threshold" and pagesets:
            pagesets[-1]["stat_threshold"] = number
        elif key in ("node_unreclaimable", "start_pfn"):
            tail[key] = number
        elif "free" not in fields:
            pass  # per-node stats, printed in a node's first populated zone
        elif protection is not None and not in_pagesets:
            stats[key] = number
        # Anything else in the pagesets section is a field this checker does not use.
    missing = [k for k in _REQUIRED_FIELDS if k not in fields]
    if protection is None:
        missing.append("protection")
    if missing:
        shown = ", ".join("pages free" if k == "free" else k for k in missing)
        raise lines.error(f"node {node} zone {name}: no {shown} line (truncated?)", start - 1)
    present = fields["present"]
    if present > 0:
        need = [k for k in ("nr_free_pages",) if k not in stats]
        if not pagesets:
            need.append("pagesets")
        need += [f"cpu {p['cpu']} {k}" for p in pagesets for k in ("count", "high", "batch")
                 if k not in p]
        need += [k for k in ("start_pfn",) if k not in tail]
        if need:
            raise lines.error(f"node {node} zone {name}: populated zone without "
                              f"{', '.join(need)} (truncated?)", start - 1)
    assert protection is not None
    return ZoneInfoZone(
        node=node, zone=name, index=index, fields=fields, protection=protection, stats=stats,
        pagesets=tuple(Pageset(p["cpu"], p["count"], p["high"], p["batch"], p.get("high_min"),
                               p.get("high_max"), p.get("stat_threshold")) for p in pagesets),
        node_unreclaimable=tail.get("node_unreclaimable"), start_pfn=tail.get("start_pfn"))


def _check_zoneinfo_complete(zones: list[ZoneInfoZone]) -> None:
    """zoneinfo prints every zone of a node, MAX_NR_ZONES of them, the protection length."""
    if not zones:
        raise SnapshotError("zoneinfo: no zones")
    for node in sorted({z.node for z in zones}):
        nz = [z for z in zones if z.node == node]
        expected = len(nz[0].protection)
        if len(nz) < expected:
            raise SnapshotError(f"zoneinfo: node {node} lists {len(nz)} zones, its protection "
                                f"arrays have {expected} entries (truncated?)")


def parse_vmstat(text: str) -> VmStat:
    """Parse /proc/vmstat (``vmstat_show``): ``name value`` lines."""
    _require_final_newline("vmstat", text)
    lines = _Lines("vmstat", text)
    values: dict[str, int] = {}
    while not lines.eof():
        line = lines.next("a counter")
        m = _VMSTAT_LINE.match(line)
        if not m:
            raise lines.error(f"malformed line {line.strip()[:50]!r}", lines.pos - 1)
        if m.group(1) in values:
            raise lines.error(f"counter {m.group(1)} appears twice", lines.pos - 1)
        values[m.group(1)] = int(m.group(2))
    if lines.lines[-1] != VMSTAT_LAST_LINE:
        raise SnapshotError(f"vmstat: does not end with {VMSTAT_LAST_LINE!r}, the line the "
                            "kernel prints last (truncated)")
    if "nr_free_pages" not in values:
        raise SnapshotError("vmstat: no nr_free_pages counter")
    return VmStat(values)


PARSERS: dict[str, Callable[[str], Parsed]] = {
    "pagetypeinfo": parse_pagetypeinfo,
    "buddyinfo": parse_buddyinfo,
    "zoneinfo": parse_zoneinfo,
    "vmstat": parse_vmstat,
}


def parse_snapshot(text: str) -> tuple[str, Parsed]:
    """Detect the format of one snapshot text and parse it."""
    kind = detect_format(text)
    return kind, PARSERS[kind](text)


# --- the rules -----------------------------------------------------------------------------

Check = Callable[[SnapshotSet], "list[str] | None"]
CHECKS: list[tuple[str, Check]] = []


def snapshot_rule(rule_id: str, title: str, anchor: str) -> Callable[[Check], Check]:
    """Register a snapshot check: it returns its violations, or None when not applicable."""
    def register(fn: Check) -> Check:
        rule(rule_id, title, f"{anchor} @ {ANCHOR_VERSION}")(fn)
        CHECKS.append((rule_id, fn))
        return fn
    return register


def _pages(counts: tuple[int, ...], lowest: int = 0) -> int:
    return sum(n << o for o, n in enumerate(counts) if o >= lowest)


def _isolated_pages(pz: PageTypeZone | None, lowest: int = 0) -> tuple[int, bool] | None:
    """Free pages on the Isolate lists (at orders >= lowest), and whether that is exact."""
    if pz is None:
        return None
    name = MIGRATETYPE_SHORT_NAMES[MIGRATE_ISOLATE]
    if name not in pz.free:
        return 0, True
    exact = not any((name, o) in pz.capped for o in range(lowest, len(pz.free[name])))
    return _pages(pz.free[name], lowest), exact


@snapshot_rule("ALLOC-INV-100", "Snapshot counts are well-formed",
               "mm/vmstat.c:pagetypeinfo_showfree_print,frag_show_print,zoneinfo_show_print,"
               "vmstat_show")
def counts_well_formed(s: SnapshotSet) -> list[str] | None:
    """
    Every count the four files print is a non-negative integer (they are printed with
    ``%lu`` or ``seq_put_decimal_ull``; the per-CPU ``count``/``high``/``batch`` with ``%i``
    are held to ALLOC-INV-113). A pagetypeinfo cell is ``>100000`` exactly when the kernel
    stopped counting a free list at 100000 entries, so a plain cell is at most 99999 and a
    ``>`` cell reads ``>100000``; such a cell is a lower bound, never an error.
    ``node_unreclaimable`` is 0 or 1 (``kswapd_failures >= MAX_RECLAIM_RETRIES``).
    """
    out: list[str] = []
    if s.pagetypeinfo is not None:
        for n in s.pagetypeinfo.nodes:
            if n.pageblock_order < 0 or n.pages_per_block < 0:
                out.append(f"pagetypeinfo node {n.node}: negative pageblock header")
            for z in n.zones:
                for mt, values in z.free.items():
                    for o, v in enumerate(values):
                        if (mt, o) in z.capped:
                            if v != FREE_LIST_CAP:
                                out.append(f"pagetypeinfo {z.zone} {mt} order {o}: '>{v}', "
                                           f"the kernel caps at '>{FREE_LIST_CAP}'")
                        elif not 0 <= v < FREE_LIST_CAP:
                            out.append(f"pagetypeinfo {z.zone} {mt} order {o}: count {v} "
                                       f"outside 0..{FREE_LIST_CAP - 1}")
                tables = [("blocks", z.blocks)] + ([("mixed", z.mixed)] if z.mixed else [])
                for table, counts in tables:
                    for mt, v in counts.items():
                        if v < 0:
                            out.append(f"pagetypeinfo {z.zone} {table} {mt}: negative ({v})")
    if s.buddyinfo is not None:
        for b in s.buddyinfo.zones:
            for o, v in enumerate(b.nr_free):
                if v < 0:
                    out.append(f"buddyinfo node {b.node} zone {b.zone} order {o}: "
                               f"negative ({v})")
    if s.zoneinfo is not None:
        for zi in s.zoneinfo.zones:
            where = f"zoneinfo node {zi.node} zone {zi.zone}"
            for key, v in list(zi.fields.items()) + list(zi.stats.items()):
                if v < 0:
                    out.append(f"{where}: {key} is negative ({v})")
            if any(v < 0 for v in zi.protection):
                out.append(f"{where}: negative protection {zi.protection}")
            if zi.start_pfn is not None and zi.start_pfn < 0:
                out.append(f"{where}: negative start_pfn")
            if zi.node_unreclaimable not in (None, 0, 1):
                out.append(f"{where}: node_unreclaimable is {zi.node_unreclaimable}, not 0/1")
    if s.vmstat is not None:
        for key, v in s.vmstat.values.items():
            if v < 0:
                out.append(f"vmstat {key} is negative ({v})")
    return out


@snapshot_rule("ALLOC-INV-101", "Pageblock geometry",
               "mm/vmstat.c:pagetypeinfo_show; include/linux/pageblock-flags.h")
def pageblock_geometry(s: SnapshotSet) -> list[str] | None:
    """
    ``Pages per block`` is ``1 << Page block order`` (``pageblock_nr_pages``), every node
    prints the same order (it is a compile-time or boot-time constant), and
    ``pageblock_order <= MAX_PAGE_ORDER`` (the number of order columns less one).
    """
    if s.pagetypeinfo is None:
        return None
    out = []
    first = s.pagetypeinfo.nodes[0]
    for n in s.pagetypeinfo.nodes:
        if n.pages_per_block != 1 << max(n.pageblock_order, 0):
            out.append(f"pagetypeinfo node {n.node}: {n.pages_per_block} pages per block, "
                       f"order {n.pageblock_order} means {1 << max(n.pageblock_order, 0)}")
        if n.pageblock_order != first.pageblock_order:
            out.append(f"pagetypeinfo node {n.node}: pageblock order {n.pageblock_order}, "
                       f"node {first.node} {first.pageblock_order}")
        if n.pageblock_order > len(n.order_header) - 1:
            out.append(f"pagetypeinfo node {n.node}: pageblock order {n.pageblock_order} "
                       f"exceeds MAX_PAGE_ORDER {len(n.order_header) - 1}")
    return out


@snapshot_rule("ALLOC-INV-102", "One MAX_PAGE_ORDER in every file",
               "mm/vmstat.c:pagetypeinfo_showfree,frag_show_print (NR_PAGE_ORDERS)")
def order_count(s: SnapshotSet) -> list[str] | None:
    """
    Every table of free blocks has NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1 columns, the same in
    pagetypeinfo (header and rows, every node) and buddyinfo (every zone), and the
    pagetypeinfo header numbers the orders 0, 1, ..., MAX_PAGE_ORDER.
    """
    widths: dict[str, int] = {}
    out = []
    if s.pagetypeinfo is not None:
        for n in s.pagetypeinfo.nodes:
            if n.order_header != tuple(range(len(n.order_header))):
                out.append(f"pagetypeinfo node {n.node}: order header {n.order_header} is not "
                           f"0..{len(n.order_header) - 1}")
            widths.setdefault("pagetypeinfo", len(n.order_header))
            if len(n.order_header) != widths["pagetypeinfo"]:
                out.append(f"pagetypeinfo node {n.node}: {len(n.order_header)} orders, "
                           f"first node {widths['pagetypeinfo']}")
    if s.buddyinfo is not None and s.buddyinfo.zones:
        widths["buddyinfo"] = len(s.buddyinfo.zones[0].nr_free)
    if len(set(widths.values())) > 1:
        out.append("order columns differ: " + ", ".join(f"{k} has {v}"
                                                        for k, v in widths.items()))
    return out if widths else None


@snapshot_rule("ALLOC-INV-103", "The same zones and migratetypes in every file",
               "mm/vmstat.c:walk_zones_in_node (assert_populated), zoneinfo_show")
def zone_sets(s: SnapshotSet) -> list[str] | None:
    """
    buddyinfo and pagetypeinfo print exactly the populated zones (``present_pages > 0``), in
    zone-index order per node, and zoneinfo prints every zone of every node in that order;
    so the three agree on the populated zones and their order. Within pagetypeinfo the free
    table, the block-count table and the mixed-block table name the same migratetypes in the
    same order (``migratetype_names[]``). Precondition: no memory hotplug between the reads.
    """
    lists: dict[str, list[tuple[int, str]]] = {}
    out = []
    if s.pagetypeinfo is not None:
        lists["pagetypeinfo"] = [(z.node, z.zone) for z in s.pagetypeinfo.zones()]
        for n in s.pagetypeinfo.nodes:
            if n.block_types != n.migratetypes:
                out.append(f"pagetypeinfo node {n.node}: block table types {n.block_types} "
                           f"differ from free table types {n.migratetypes}")
            if n.mixed_types is not None and n.mixed_types != n.migratetypes:
                out.append(f"pagetypeinfo node {n.node}: mixed table types {n.mixed_types} "
                           f"differ from free table types {n.migratetypes}")
    if s.buddyinfo is not None:
        lists["buddyinfo"] = [(z.node, z.zone) for z in s.buddyinfo.zones]
    if s.zoneinfo is not None:
        lists["zoneinfo (populated)"] = [(z.node, z.zone) for z in s.zoneinfo.zones
                                         if z.populated]
        names: dict[int, list[str]] = {}
        for z in s.zoneinfo.zones:
            names.setdefault(z.node, []).append(z.zone)
        first = next(iter(names.values()))
        for node, zs in names.items():
            if zs != first:
                out.append(f"zoneinfo node {node} lists zones {zs}, another node {first}")
    items = list(lists.items())
    for (ka, a), (kb, b) in itertools.pairwise(items):
        if a != b:
            out.append(f"{ka} zones {_fmt_zones(a)} differ from {kb} zones {_fmt_zones(b)}")
    return out if lists else None


def _fmt_zones(zs: list[tuple[int, str]]) -> str:
    return "[" + ", ".join(f"{n}/{z}" for n, z in zs) + "]"


@snapshot_rule("ALLOC-INV-104", "Watermarks are ordered",
               "mm/page_alloc.c:__setup_per_zone_wmarks,boost_watermark; "
               "mm/vmstat.c:zoneinfo_show_print")
def watermarks_ordered(s: SnapshotSet) -> list[str] | None:
    """
    Per zone ``boost <= min <= low <= high <= promo``: zoneinfo prints each mark plus
    ``watermark_boost``; ``__setup_per_zone_wmarks`` sets LOW = MIN + delta, HIGH = LOW +
    delta, PROMO = HIGH + delta with delta >= 0, and the boost is added to all four. The marks
    and the boost change only under the zone lock, which zoneinfo holds while printing.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        f = z.fields
        chain = [(k, f[k]) for k in ("boost", "min", "low", "high", "promo") if k in f]
        for (ka, a), (kb, b) in itertools.pairwise(chain):
            if a > b:
                out.append(f"zoneinfo node {z.node} zone {z.zone}: {ka} {a} > {kb} {b}")
    return out


@snapshot_rule("ALLOC-INV-105", "lowmem_reserve (protection) is monotone",
               "mm/page_alloc.c:setup_per_zone_lowmem_reserve; mm/vmstat.c:zoneinfo_show_print")
def lowmem_reserve_monotone(s: SnapshotSet) -> list[str] | None:
    """
    A zone's ``protection: (...)`` lists ``lowmem_reserve[j]`` for every zone index j of the
    node (MAX_NR_ZONES entries, one per zone zoneinfo prints). Entries at the zone's own index
    and below are 0 (never set). Above it, ``lowmem_reserve[j]`` is the managed pages of zones
    i+1..j divided by the zone's ``lowmem_reserve_ratio`` (0 for every j when the ratio is 0
    or the zone manages nothing), so it does not decrease with j. The check compares only the
    entries of zones that manage pages, which also holds for a kernel that zeroes the entry
    of an empty upper zone.
    """
    if s.zoneinfo is None:
        return None
    out = []
    per_node: dict[int, list[ZoneInfoZone]] = {}
    for z in s.zoneinfo.zones:
        per_node.setdefault(z.node, []).append(z)
    for z in s.zoneinfo.zones:
        where = f"zoneinfo node {z.node} zone {z.zone}"
        p = z.protection
        node_zones = per_node[z.node]
        if len(p) != len(node_zones):
            out.append(f"{where}: protection has {len(p)} entries, the node "
                       f"{len(node_zones)} zones")
        if any(p[: z.index + 1]):
            out.append(f"{where}: protection {p} is not 0 up to its own index {z.index}")
        managing = [v for j, v in enumerate(p)
                    if j > z.index and j < len(node_zones) and node_zones[j].fields["managed"]]
        if any(a > b for a, b in itertools.pairwise(managing)):
            out.append(f"{where}: protection {p} decreases")
    return out


@snapshot_rule("ALLOC-INV-106", "managed <= present <= spanned",
               "mm/mm_init.c:calculate_node_totalpages; mm/page_alloc.c:adjust_managed_page_count")
def zone_sizes(s: SnapshotSet) -> list[str] | None:
    """
    A zone spans ``spanned`` pfns, of which ``present`` exist, of which ``managed`` were
    handed to the buddy allocator: ``managed <= present <= spanned``; an empty zone (present
    0) manages nothing.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        f = z.fields
        if not f["managed"] <= f["present"] <= f["spanned"]:
            out.append(f"zoneinfo node {z.node} zone {z.zone}: managed {f['managed']}, "
                       f"present {f['present']}, spanned {f['spanned']} not ordered")
    return out


@snapshot_rule("ALLOC-INV-107", "Pageblock counts fit the zone span",
               "mm/vmstat.c:pagetypeinfo_showblockcount_print")
def pageblocks_fit_span(s: SnapshotSet) -> list[str] | None:
    """
    ``pagetypeinfo_showblockcount_print`` visits ``start_pfn + k * pageblock_nr_pages`` for
    every k with that pfn below the zone end and counts the pageblocks whose visited page is
    online and in the zone, so the counts over all migratetypes sum to at most
    ``ceil(spanned / pageblock_nr_pages)``. (There is no lower bound: holes, offline sections
    and struct pages not yet initialised are skipped.)
    """
    if s.pagetypeinfo is None or s.zoneinfo is None:
        return None
    out = []
    pb = s.pagetypeinfo.nodes[0].pages_per_block
    if pb <= 0:
        return None
    for pz in s.pagetypeinfo.zones():
        z = s.zoneinfo_zone(pz.node, pz.zone)
        if z is None:
            continue
        limit = -(-z.fields["spanned"] // pb)
        total = sum(pz.blocks.values())
        if total > limit:
            out.append(f"node {pz.node} zone {pz.zone}: {total} pageblocks counted, the span "
                       f"of {z.fields['spanned']} pages holds at most {limit}")
    return out


@snapshot_rule("ALLOC-INV-108", "Free pages are managed pages",
               "mm/vmstat.c:zoneinfo_show_print; mm/page_alloc.c:__free_pages_core")
def free_within_managed(s: SnapshotSet) -> list[str] | None:
    """
    Only pages handed to the buddy allocator are ever free, so a zone's ``pages free``
    (NR_FREE_PAGES) is at most ``managed`` plus the zone's counter slack: 125 pages for each
    CPU whose ``vm stats threshold`` is non-zero, the most a per-CPU diff not yet folded
    into the counter can hold.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        if z.fields["free"] > z.fields["managed"] + z.slack():
            out.append(f"zoneinfo node {z.node} zone {z.zone}: pages free {z.fields['free']} "
                       f"> managed {z.fields['managed']} + slack {z.slack()}")
    return out


@snapshot_rule("ALLOC-INV-109", "A zone's two free-page readings agree",
               "mm/vmstat.c:zoneinfo_show_print (zone_page_state(zone, NR_FREE_PAGES) twice)")
def free_readings_agree(s: SnapshotSet) -> list[str] | None:
    """
    ``pages free`` and the ``nr_free_pages`` line of the same zone read the same counter
    while zoneinfo holds the zone lock; NR_FREE_PAGES changes only under that lock, so
    between the two reads only folds of per-CPU diffs can move it: the two differ by at most
    the zone's counter slack.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        if "nr_free_pages" in z.stats:
            d = abs(z.fields["free"] - z.stats["nr_free_pages"])
            if d > z.slack():
                out.append(f"zoneinfo node {z.node} zone {z.zone}: pages free "
                           f"{z.fields['free']} vs nr_free_pages {z.stats['nr_free_pages']} "
                           f"(differ by {d} > slack {z.slack()})")
    return out


@snapshot_rule("ALLOC-INV-110", "nr_free_pages_blocks <= nr_free_pages",
               "mm/page_alloc.c:__add_to_free_list,account_freepages (NR_FREE_PAGES_BLOCKS)")
def free_blocks_within_free(s: SnapshotSet) -> list[str] | None:
    """
    NR_FREE_PAGES_BLOCKS (6.15+) counts the free pages in buddies of order >= pageblock_order
    outside the Isolate lists, a subset of what NR_FREE_PAGES counts; so per zone, and in
    vmstat for the whole machine, ``nr_free_pages_blocks <= nr_free_pages`` + slack (the
    zone's, or for vmstat the sum over zoneinfo's zones; vmstat alone is not checked).
    """
    out = []
    applied = False
    if s.zoneinfo is not None:
        for z in s.zoneinfo.zones:
            if "nr_free_pages_blocks" in z.stats and "nr_free_pages" in z.stats:
                applied = True
                b, f = z.stats["nr_free_pages_blocks"], z.stats["nr_free_pages"]
                if b > f + z.slack():
                    out.append(f"zoneinfo node {z.node} zone {z.zone}: nr_free_pages_blocks "
                               f"{b} > nr_free_pages {f} + slack {z.slack()}")
        v = s.vmstat.values if s.vmstat is not None else {}
        if "nr_free_pages_blocks" in v:
            applied = True
            slack = sum(z.slack() for z in s.zoneinfo.zones)
            if v["nr_free_pages_blocks"] > v["nr_free_pages"] + slack:
                out.append(f"vmstat nr_free_pages_blocks {v['nr_free_pages_blocks']} > "
                           f"nr_free_pages {v['nr_free_pages']} + slack {slack}")
    return out if applied else None


@snapshot_rule("ALLOC-INV-111", "nr_free_pages_blocks counts whole pageblocks",
               "mm/page_alloc.c:__add_to_free_list,__del_page_from_free_list,move_to_free_list")
def free_blocks_multiple(s: SnapshotSet) -> list[str] | None:
    """
    NR_FREE_PAGES_BLOCKS changes only by ``1 << order`` with ``order >= pageblock_order``,
    and with ``pageblock_nr_pages > 250`` every change is folded at once, so each zone's value
    and vmstat's sum are multiples of ``pageblock_nr_pages`` (from pagetypeinfo).
    """
    pb_order = s.pageblock_order()
    if pb_order is None or pb_order < 0:
        return None
    pb = 1 << pb_order
    out = []
    applied = False
    if s.zoneinfo is not None:
        for z in s.zoneinfo.zones:
            b = z.stats.get("nr_free_pages_blocks")
            if b is not None and (pb > 2 * MAX_STAT_THRESHOLD or not z.slack()):
                applied = True
                if b % pb:
                    out.append(f"zoneinfo node {z.node} zone {z.zone}: nr_free_pages_blocks "
                               f"{b} is not a multiple of {pb}")
    if s.vmstat is not None and "nr_free_pages_blocks" in s.vmstat.values:
        b = s.vmstat.values["nr_free_pages_blocks"]
        if pb > 2 * MAX_STAT_THRESHOLD:
            applied = True
            if b % pb:
                out.append(f"vmstat nr_free_pages_blocks {b} is not a multiple of {pb}")
    return out if applied else None


@snapshot_rule("ALLOC-INV-112", "vm stats thresholds are at most 125",
               "mm/vmstat.c:calculate_normal_threshold,calculate_pressure_threshold")
def stat_thresholds(s: SnapshotSet) -> list[str] | None:
    """
    A per-CPU ``vm stats threshold`` is ``min(125, ...)`` (normal) or ``min(125, max(1,
    ...))`` (under pressure), so 0 <= threshold <= 125; the counter slack rests on this.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        for p in z.pagesets:
            if p.stat_threshold is not None and not 0 <= p.stat_threshold <= MAX_STAT_THRESHOLD:
                out.append(f"zoneinfo node {z.node} zone {z.zone} cpu {p.cpu}: vm stats "
                           f"threshold {p.stat_threshold} outside 0..{MAX_STAT_THRESHOLD}")
    return out


@snapshot_rule("ALLOC-INV-113", "Per-CPU pageset fields",
               "mm/page_alloc.c:pageset_update,zone_set_pageset_high_and_batch,"
               "per_cpu_pages_init,decay_pcp_high")
def pageset_fields(s: SnapshotSet) -> list[str] | None:
    """
    Per CPU and zone: ``count >= 0``, ``high >= 0``, ``high_min >= 0``, ``high_max >= 0``
    and ``batch >= 1`` (``max(1, zone_batchsize())``; BOOT_PAGESET_BATCH is 1). Nothing more
    is guaranteed: ``count`` may exceed ``high`` (``high`` is lowered by ``decay_pcp_high``
    and ``nr_pcp_high`` before the list is drained, and a refill can overshoot), ``high`` may
    lie below ``high_min`` (it stays at BOOT_PAGESET_HIGH = 0 until the list is first used),
    and ``high_min`` may exceed ``high_max`` (the low watermark against managed/8). The
    fields are read without the pcp lock.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        for p in z.pagesets:
            where = f"zoneinfo node {z.node} zone {z.zone} cpu {p.cpu}"
            for key in ("count", "high", "high_min", "high_max"):
                v = getattr(p, key)
                if v is not None and v < 0:
                    out.append(f"{where}: {key} {v} < 0")
            if p.batch < 1:
                out.append(f"{where}: batch {p.batch} < 1")
    return out


@snapshot_rule("ALLOC-INV-114", "Free lists per migratetype sum to buddyinfo",
               "mm/vmstat.c:pagetypeinfo_showfree_print,frag_show_print; "
               "mm/page_alloc.c:__add_to_free_list (nr_free++)")
def pagetype_sums(s: SnapshotSet) -> list[str] | None:
    """
    ``free_area[order].nr_free`` counts the blocks on all of the order's free lists, so at
    one moment the pagetypeinfo cells of an order, summed over migratetypes, equal that
    order's buddyinfo column. Across reads each cell and column moves by at most ``drift``
    (each page that enters, leaves or moves changes an order's count by at most one), so
    ``|sum - nr_free| <= drift``; a capped cell only bounds the sum from below. Not checked
    when the drift is unknown: pagetypeinfo drops the zone lock between cells.
    """
    if s.drift is None or s.pagetypeinfo is None or s.buddyinfo is None:
        return None
    out = []
    for pz in s.pagetypeinfo.zones():
        b = s.buddy_zone(pz.node, pz.zone)
        if b is None:
            continue
        for o, nr_free in enumerate(b.nr_free):
            cells = [(mt, v[o]) for mt, v in pz.free.items() if o < len(v)]
            total = sum(v for _, v in cells)
            capped = any((mt, o) in pz.capped for mt, _ in cells)
            if total > nr_free + s.drift or (not capped and total < nr_free - s.drift):
                rel = ">=" if capped else "="
                out.append(f"node {pz.node} zone {pz.zone} order {o}: pagetypeinfo sum "
                           f"{rel} {total}, buddyinfo {nr_free} (drift {s.drift})")
    return out


@snapshot_rule("ALLOC-INV-115", "The zone's free counter matches its free lists",
               "mm/page_alloc.c:account_freepages; mm/vmstat.c:zoneinfo_show_print")
def free_counter_matches_lists(s: SnapshotSet) -> list[str] | None:
    """
    NR_FREE_PAGES is the number of pages in free buddies outside the Isolate lists (pages on
    per-CPU lists are not free). So a zone's ``pages free`` equals, up to its counter slack,
    the pages on its free lists (buddyinfo's ``sum nr_free[o] << o``, read under the zone
    lock; else the sum of pagetypeinfo's cells) less the pages on the Isolate lists
    (pagetypeinfo). Across reads: the zoneinfo reading and buddyinfo's total each move by at
    most ``drift``; a page total summed from pagetypeinfo cells, read at different moments, by
    at most ``drift << MAX_PAGE_ORDER`` (one split or merge changes cells of many orders).
    Without pagetypeinfo, or with a capped Isolate cell, only the upper bound is checked; a
    capped free cell leaves only the lower bound. Not checked when the drift is unknown.
    """
    if s.drift is None or s.zoneinfo is None or (s.buddyinfo is None and s.pagetypeinfo is None):
        return None
    out = []
    big_drift = s.drift << ((s.nr_orders() or 1) - 1)
    for z in s.zoneinfo.zones:
        if not z.populated:
            continue
        b = s.buddy_zone(z.node, z.zone)
        pz = s.pagetype_zone(z.node, z.zone)
        if b is not None:
            on_lists, lists_exact, tol = _pages(b.nr_free), True, z.slack() + 2 * s.drift
        elif pz is not None:
            on_lists = sum(_pages(v) for v in pz.free.values())
            lists_exact, tol = not pz.capped, z.slack() + s.drift + big_drift
        else:
            continue
        iso = _isolated_pages(pz)
        iso_pages, iso_exact = iso if iso is not None else (0, False)
        if pz is not None and b is not None:
            tol += big_drift  # the Isolate cells were read at other moments than buddyinfo
        expected = on_lists - iso_pages
        free = z.fields["free"]
        too_high = lists_exact and free > expected + tol
        too_low = iso_exact and free < expected - tol
        if too_high or too_low:
            out.append(f"node {z.node} zone {z.zone}: pages free {free}, free lists hold "
                       f"{on_lists} pages of which {iso_pages} isolated (tolerance {tol})")
    return out


@snapshot_rule("ALLOC-INV-116", "nr_free_pages_blocks matches the large free buddies",
               "mm/page_alloc.c:__add_to_free_list,move_to_free_list (NR_FREE_PAGES_BLOCKS)")
def free_blocks_match_lists(s: SnapshotSet) -> list[str] | None:
    """
    NR_FREE_PAGES_BLOCKS is the number of pages in free buddies of order >= pageblock_order
    outside the Isolate lists, and it is exact: every change is ``+-2^order >=
    pageblock_nr_pages``, which (when above 250) passes any per-CPU threshold and is folded
    at once (otherwise the zone's counter slack applies). So each zone's value equals the
    large-buddy pages of buddyinfo (else of pagetypeinfo's cells) less those on the Isolate
    lists (pagetypeinfo, which also gives pageblock_order). Across reads one page entering or
    leaving can change a large-buddy total by up to ``1 << MAX_PAGE_ORDER`` pages (a split or
    merge of a largest buddy), so the tolerance is ``2 * drift << MAX_PAGE_ORDER``. Not
    checked when the drift is unknown.
    """
    pb_order = s.pageblock_order()
    if (s.drift is None or s.zoneinfo is None or s.pagetypeinfo is None
            or pb_order is None or pb_order < 0):
        return None
    out = []
    tol = 2 * s.drift << ((s.nr_orders() or 1) - 1)
    for z in s.zoneinfo.zones:
        blocks = z.stats.get("nr_free_pages_blocks")
        b = s.buddy_zone(z.node, z.zone)
        pz = s.pagetype_zone(z.node, z.zone)
        if blocks is None or pz is None:
            continue
        if b is not None:
            big, big_exact = _pages(b.nr_free, pb_order), True
        else:
            big = sum(_pages(v, pb_order) for v in pz.free.values())
            big_exact = not any(o >= pb_order for _, o in pz.capped)
        iso = _isolated_pages(pz, pb_order)
        assert iso is not None
        expected = big - iso[0]
        ztol = tol + (z.slack() if (1 << pb_order) <= 2 * MAX_STAT_THRESHOLD else 0)
        if (big_exact and blocks > expected + ztol) or (iso[1] and blocks < expected - ztol):
            out.append(f"node {z.node} zone {z.zone}: nr_free_pages_blocks {blocks}, free "
                       f"buddies of order >= {pb_order} hold {big} pages of which {iso[0]} "
                       f"isolated (tolerance {ztol})")
    return out


@snapshot_rule("ALLOC-INV-117", "vmstat's free counters are the sums over zones",
               "mm/vmstat.c:vmstat_start,zone_page_state_add (vm_zone_stat and zone->vm_stat)")
def vmstat_sums(s: SnapshotSet) -> list[str] | None:
    """
    A fold adds the same amount to the zone's counter and to the global one
    (``zone_page_state_add``), so at one moment vmstat's ``nr_free_pages`` and
    ``nr_free_pages_blocks`` are the sums of zoneinfo's per-zone values. Across reads each
    zone's ``nr_free_pages`` moves by at most drift + slack and its ``nr_free_pages_blocks``
    by at most ``drift << MAX_PAGE_ORDER`` (MAX_PAGE_ORDER = 10 unless pagetypeinfo or
    buddyinfo says otherwise). Not checked when the drift is unknown.
    """
    if s.drift is None or s.zoneinfo is None or s.vmstat is None:
        return None
    out = []
    populated = [z for z in s.zoneinfo.zones if z.populated]
    max_order = (s.nr_orders() or 11) - 1
    v = s.vmstat.values
    tolerances = {"nr_free_pages": sum(s.drift + z.slack() for z in populated),
                  "nr_free_pages_blocks": sum(s.drift << max_order for _ in populated)}
    for key, tol in tolerances.items():
        if key not in v or not all(key in z.stats for z in populated):
            continue
        total = sum(z.stats[key] for z in populated)
        if abs(v[key] - total) > tol:
            out.append(f"vmstat {key} {v[key]}, zoneinfo zones sum to {total} "
                       f"(tolerance {tol})")
    return out


@snapshot_rule("ALLOC-INV-118", "Free pages lie in pageblocks of their list's type",
               "mm/page_alloc.c:__add_to_free_list (VM_WARN_ONCE page type), "
               "move_freepages_block; mm/vmstat.c:pagetypeinfo_showblockcount_print")
def free_pages_fit_blocks(s: SnapshotSet) -> list[str] | None:
    """
    Since the 6.10 freelist hygiene a free buddy is on the free list of its pageblock's type
    (a buddy of order >= pageblock_order covers whole pageblocks, all of that type), and the
    block-count table counts every pageblock holding a free page (such a block is online and
    initialised, and its visited page lies in it and in the zone). So per zone and
    migratetype the pages on that type's free lists fit in its pageblocks:
    ``sum count[mt][o] << o <= blocks[mt] * pageblock_nr_pages``, plus one
    pageblock when the zone does not start on a pageblock boundary or its start is unknown
    (the partial block at the zone end may go uncounted), plus ``drift *
    pageblock_nr_pages`` for type changes and ``drift << MAX_PAGE_ORDER`` for the cells'
    different moments. Not checked when the drift is unknown.
    """
    if s.drift is None or s.pagetypeinfo is None:
        return None
    out = []
    pb = s.pagetypeinfo.nodes[0].pages_per_block
    big_drift = s.drift << ((s.nr_orders() or 1) - 1)
    for pz in s.pagetypeinfo.zones():
        z = s.zoneinfo_zone(pz.node, pz.zone)
        aligned = z is not None and z.start_pfn is not None and pb > 0 and z.start_pfn % pb == 0
        extra = (0 if aligned else pb) + s.drift * pb + big_drift
        for mt, counts in pz.free.items():
            pages = _pages(counts)
            room = pz.blocks.get(mt, 0) * pb
            if pages > room + extra:
                out.append(f"node {pz.node} zone {pz.zone}: {pages} free pages on {mt} lists, "
                           f"{pz.blocks.get(mt, 0)} {mt} pageblocks hold {room} "
                           f"(tolerance {extra})")
    return out


@snapshot_rule("ALLOC-INV-119", "Mixed pageblocks are pageblocks",
               "mm/page_owner.c:pagetypeinfo_showmixedcount_print")
def mixed_within_blocks(s: SnapshotSet) -> list[str] | None:
    """
    With page_owner on, pagetypeinfo ends with the number of pageblocks of each type that
    hold a page allocated for another type; CMA blocks are counted under Movable, and a
    pageblock straddling a zone boundary is counted in both zones. So per zone
    ``mixed[mt] <= blocks[mt]`` (``+ blocks[CMA]`` for Movable) ``+ 2`` (the zone's first and
    last pageblocks) ``+ drift`` (the table is printed later, without the zone lock). Not
    checked when the drift is unknown or the table is absent.
    """
    if s.drift is None or s.pagetypeinfo is None:
        return None
    zones = [pz for pz in s.pagetypeinfo.zones() if pz.mixed is not None]
    if not zones:
        return None
    out = []
    movable = MIGRATETYPE_SHORT_NAMES[MIGRATE_MOVABLE]
    cma = MIGRATETYPE_SHORT_NAMES[MIGRATE_CMA]
    for pz in zones:
        assert pz.mixed is not None
        for mt, mixed in pz.mixed.items():
            limit = pz.blocks.get(mt, 0) + (pz.blocks.get(cma, 0) if mt == movable else 0)
            if mixed > limit + 2 + s.drift:
                out.append(f"node {pz.node} zone {pz.zone}: {mixed} mixed {mt} pageblocks, "
                           f"{limit} {mt} pageblocks (tolerance {2 + s.drift})")
    return out


@snapshot_rule("ALLOC-INV-120", "CMA pages are managed, free CMA pages are CMA pages",
               "mm/mm_init.c:init_cma_reserved_pageblock; mm/page_alloc.c:account_freepages")
def cma_bounded(s: SnapshotSet) -> list[str] | None:
    """
    ``cma`` (``zone->cma_pages``) grows with ``managed`` when a CMA pageblock is handed to
    the buddy, so ``cma <= managed``; the free CMA pages (``nr_free_cma``, NR_FREE_CMA_PAGES)
    are pages of those blocks, so ``nr_free_cma <= cma`` + slack.
    """
    if s.zoneinfo is None:
        return None
    out = []
    for z in s.zoneinfo.zones:
        where = f"zoneinfo node {z.node} zone {z.zone}"
        cma = z.fields.get("cma")
        if cma is None:
            continue
        if cma > z.fields["managed"]:
            out.append(f"{where}: cma {cma} > managed {z.fields['managed']}")
        free_cma = z.stats.get("nr_free_cma")
        if free_cma is not None and free_cma > cma + z.slack():
            out.append(f"{where}: nr_free_cma {free_cma} > cma {cma} + slack {z.slack()}")
    return out


# --- the entry points ----------------------------------------------------------------------


def parse_snapshots(texts: list[str], drift: int | None = None) -> SnapshotSet:
    """Parse each text (format by content) into one :class:`SnapshotSet`."""
    if drift is not None and drift < 0:
        raise SnapshotError(f"drift must be >= 0, got {drift}")
    if not texts:
        raise SnapshotError("no snapshots given")
    found: dict[str, Parsed] = {}
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise SnapshotError(f"snapshot {i + 1}: expected text, got {type(text).__name__}")
        try:
            kind, parsed = parse_snapshot(text)
        except SnapshotError as e:
            raise SnapshotError(f"snapshot {i + 1}: {e}") from None
        if kind in found:
            raise SnapshotError(f"snapshot {i + 1}: a second {kind} snapshot; check each "
                                "moment's set separately")
        found[kind] = parsed
    return SnapshotSet(drift=drift, **found)  # type: ignore[arg-type]


def check_snapshot_set(s: SnapshotSet) -> Report:
    report = Report(formats=[k for k in PARSERS if getattr(s, k) is not None])
    for rule_id, check in CHECKS:
        found = check(s)
        if found is None:
            continue
        report.checked.append(rule_id)
        report.violations.extend({"rule": rule_id, "message": m} for m in found)
    return report


def check_snapshots(texts: list[str], drift: int | None = None) -> Report:
    """Detect, parse and check snapshots: at most one each of the four formats.

    ``drift`` bounds what changed between the reads (module doc); the default, None, checks
    each file on its own and the structure across files. Raises :class:`SnapshotError` on
    unreadable, unknown, malformed or truncated input.
    """
    return check_snapshot_set(parse_snapshots(texts, drift))


def read_live(root: str = "/") -> list[str]:
    """Read the four /proc files, back to back, skipping those this process cannot read."""
    texts = []
    for name in PROC_FILES:
        try:
            texts.append((Path(root) / name.lstrip("/")).read_text())
        except OSError:
            continue
    return texts


# --- rendering a spec zone -----------------------------------------------------------------


def _capped_cell(n: int) -> str:
    return f">{FREE_LIST_CAP:6d}" if n >= FREE_LIST_CAP else f"{n:6d}"


def snapshot_from_spec(zone: Zone, with_vmstat: bool = False) -> list[str]:
    """Render a spec zone as /proc/pagetypeinfo, /proc/buddyinfo and /proc/zoneinfo text.

    The zone is ZONE_NORMAL of node 0 in a kernel whose zones are Normal and an empty
    Movable (so ``protection`` has two entries: 0 and the zone's ``lowmem_reserve``).
    Counters are the zone's own (``nr_free``, ``nr_free_pages``, ...), not recomputed, so the
    checker holds them to the free lists; the per-CPU ``vm stats threshold`` is printed as 0
    because the model's counters are exact. With ``with_vmstat`` a fourth text carries the
    vmstat free counters.
    """
    return [render_pagetypeinfo(zone), render_buddyinfo(zone), render_zoneinfo(zone)] + (
        [render_vmstat(zone)] if with_vmstat else [])


def _zone_prefix(name: str = "Normal") -> str:
    return f"Node 0, zone {name:>8s} "


def render_pagetypeinfo(zone: Zone) -> str:
    cfg = zone.config
    names = [MIGRATETYPE_SHORT_NAMES[mt] for mt in range(MIGRATE_TYPES)]
    out = [f"Page block order: {cfg.pageblock_order}",
           f"Pages per block:  {cfg.pageblock_nr_pages}", ""]
    out.append(f"{'Free pages count per migrate type at order':<43s} "
               + "".join(f"{o:6d} " for o in range(cfg.nr_page_orders)))
    for mt, name in enumerate(names):
        cells = "".join(_capped_cell(len(zone.free_area[o][mt])) + " "
                        for o in range(cfg.nr_page_orders))
        out.append(f"Node {0:4d}, zone {'Normal':>8s}, type {name:>12s} {cells}")
    out.append("")
    out.append(f"{'Number of blocks type ':<23s}" + "".join(f"{n:>12s} " for n in names))
    counts = [0] * len(names)
    for pb in range(cfg.nr_pageblocks):
        counts[zone.get_pfnblock_migratetype(cfg.zone_start_pfn + (pb << cfg.pageblock_order))
               ] += 1
    out.append(_zone_prefix() + "".join(f"{c:12d} " for c in counts))
    return "\n".join(out) + "\n"


def render_buddyinfo(zone: Zone) -> str:
    return _zone_prefix() + "".join(f"{n:6d} " for n in zone.nr_free) + "\n"


def render_zoneinfo(zone: Zone) -> str:
    cfg = zone.config
    wm = [zone.wmark_pages(w) for w in (WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO)]
    pb = cfg.pageblock_nr_pages
    cma_pages = sum(pb for mt in zone.pageblock_migratetype if mt == MIGRATE_CMA)
    lines = [
        "Node 0, zone   Normal",
        f"  pages free     {zone.nr_free_pages}",
        f"        boost    {zone.watermark_boost}",
        f"        min      {wm[0]}",
        f"        low      {wm[1]}",
        f"        high     {wm[2]}",
        f"        promo    {wm[3]}",
        f"        spanned  {cfg.spanned_pages}",
        f"        present  {cfg.spanned_pages}",
        f"        managed  {cfg.managed_pages}",
        f"        cma      {cma_pages}",
        f"        protection: (0, {cfg.lowmem_reserve})",
        f"      {'nr_free_pages':<12s} {zone.nr_free_pages}",
        f"      {'nr_free_pages_blocks':<12s} {zone.nr_free_pages_blocks}",
        f"      {'nr_free_cma':<12s} {zone.nr_free_cma_pages}",
        "  pagesets",
    ]
    for cpu, p in enumerate(zone.pcp):
        lines += [f"    cpu: {cpu}",
                  f"              count:    {p.count}",
                  f"              high:     {p.high}",
                  f"              batch:    {p.batch}",
                  f"              high_min: {p.high_min}",
                  f"              high_max: {p.high_max}",
                  "  vm stats threshold: 0"]
    lines += ["  node_unreclaimable:  0", f"  start_pfn:           {cfg.zone_start_pfn}"]
    movable_min = highmem_min_pages(0)
    lines += ["Node 0, zone  Movable",
              "  pages free     0",
              "        boost    0"]
    lines += [f"        {k:<8s} {movable_min}" for k in ("min", "low", "high", "promo")]
    lines += [f"        {k:<8s} 0" for k in ("spanned", "present", "managed", "cma")]
    lines += ["        protection: (0, 0)"]
    return "\n".join(lines) + "\n"


def render_vmstat(zone: Zone) -> str:
    return (f"nr_free_pages {zone.nr_free_pages}\n"
            f"nr_free_pages_blocks {zone.nr_free_pages_blocks}\n"
            f"nr_free_cma {zone.nr_free_cma_pages}\n"
            f"{VMSTAT_LAST_LINE}\n")


__all__ = ["BuddyInfo", "PageTypeInfo", "Report", "SnapshotError", "SnapshotSet", "VmStat",
           "ZoneInfo", "check_snapshot_set", "check_snapshots", "detect_format", "parse_snapshot",
           "parse_snapshots", "read_live", "snapshot_from_spec"]
