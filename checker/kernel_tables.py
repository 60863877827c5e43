"""Tables the live kernel publishes about itself, parsed so the spec's can be compared.

A tracepoint's ``format`` file (tracefs ``events/kmem/mm_page_alloc/format``) carries the
``__print_flags`` table that ``show_gfp_flags()`` uses, with every GFP name and its value as
a C expression; evaluating those expressions gives the running kernel's own GFP table.
"""

from __future__ import annotations

import re

TRACEFS = "/sys/kernel/tracing"
_ENTRY = re.compile(r'\{\s*\(\s*unsigned long\s*\)\s*(.*?),\s*"(\w+)"\s*\}')
_ALLOWED = re.compile(r"^[0-9a-fA-Fx()|&~<> ]*$")


class FormatError(Exception):
    """A tracepoint format file that does not have the expected shape."""


def _eval_c_int(expr: str) -> int:
    e = re.sub(r"\(\s*(__force\s+)?gfp_t\s*\)", "", expr)
    e = re.sub(r"\(\s*unsigned long\s*\)", "", e)
    e = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)(UL|U|ul|u|L)\b", r"\1", e)
    if not _ALLOWED.match(e):
        raise FormatError(f"unexpected expression in format file: {expr[:80]!r}")
    value = eval(e, {"__builtins__": {}}, {})  # only integers, parentheses and bit operators
    if not isinstance(value, int):
        raise FormatError(f"expression is not an integer: {expr[:80]!r}")
    return value


def gfp_table_from_format(text: str) -> list[tuple[str, int]]:
    """The (name, value) pairs of the ``gfp_flags`` ``__print_flags`` table, in order."""
    m = re.search(r"__print_flags\(REC->gfp_flags,\s*\"\|\",(.*)", text, re.S)
    if not m:
        raise FormatError("no __print_flags(REC->gfp_flags, ...) in the format file")
    entries = _ENTRY.findall(m.group(1))
    if not entries:
        raise FormatError("the gfp_flags table is empty")
    return [(name, _eval_c_int(expr)) for expr, name in entries]


def read_live_gfp_table() -> list[tuple[str, int]]:
    with open(f"{TRACEFS}/events/kmem/mm_page_alloc/format") as f:
        return gfp_table_from_format(f.read())


# --- the spec's tables against what the kernel publishes ---------------------------------------

def gfp_table_mismatches(spec_table: tuple[tuple[str, int], ...] | list[tuple[str, int]],
                         format_text: str) -> list[str]:
    """ALLOC-POL-002: the spec's GFP names and values against a tracepoint format file."""
    kernel = gfp_table_from_format(format_text)
    out = []
    spec_d, kernel_d = dict(spec_table), dict(kernel)
    for name in sorted(set(spec_d) | set(kernel_d)):
        if spec_d.get(name) != kernel_d.get(name):
            out.append(f"{name}: spec {spec_d.get(name)!r}, kernel {kernel_d.get(name)!r}")
    if not out and [n for n, _ in spec_table] != [n for n, _ in kernel]:
        out.append("same names and values, different order (show_gfp_flags prints in order)")
    return out


def pagetypeinfo_type_order(text: str) -> list[str]:
    """The migratetype names of /proc/pagetypeinfo's block-count header, in column order."""
    m = re.search(r"^Number of blocks type\s+(.*)$", text, re.M)
    if not m:
        raise FormatError("no 'Number of blocks type' header in the pagetypeinfo text")
    return m.group(1).split()


def migratetype_mismatches(short_names: dict[int, str], pagetypeinfo_text: str) -> list[str]:
    """ALLOC-POL-001: /proc/pagetypeinfo prints one column per migratetype in enum order
    (``migratetype_names[]``), so the column of a name is its number (CMA and Isolate only
    with their configs: the columns present must be a prefix-respecting subsequence)."""
    columns = pagetypeinfo_type_order(pagetypeinfo_text)
    number_of = {name: mt for mt, name in short_names.items()}
    out = []
    unknown = [c for c in columns if c not in number_of]
    if unknown:
        out.append(f"kernel types {unknown} are not in the spec")
    numbers = [number_of[c] for c in columns if c in number_of]
    if numbers != sorted(numbers):
        out.append(f"kernel column order {columns} is not the spec's numbering {numbers}")
    for i, c in enumerate(columns[:3]):  # the pcp types are always present, as 0, 1, 2
        if number_of.get(c) != i:
            out.append(f"{c} is column {i} in the kernel, {number_of.get(c)} in the spec")
    return out


def alloc_flag_mismatches(flags: dict[str, int], gfp_bits: dict[str, int]) -> list[str]:
    """ALLOC-POL-003: the identities mm/page_alloc.c asserts with BUILD_BUG_ON and the shape
    of the flag word (the watermark index in the low bits, then one bit per flag)."""
    out = []
    if flags["ALLOC_MIN_RESERVE"] != gfp_bits["__GFP_HIGH"]:
        out.append("BUILD_BUG_ON(__GFP_HIGH != (__force gfp_t) ALLOC_MIN_RESERVE) fails")
    if flags["ALLOC_KSWAPD"] != gfp_bits["__GFP_KSWAPD_RECLAIM"]:
        out.append("BUILD_BUG_ON(__GFP_KSWAPD_RECLAIM != (__force gfp_t) ALLOC_KSWAPD) fails")
    if flags["ALLOC_WMARK_MASK"] != flags["ALLOC_NO_WATERMARKS"] - 1:
        out.append("ALLOC_WMARK_MASK is not ALLOC_NO_WATERMARKS - 1")
    if not {flags["ALLOC_WMARK_MIN"], flags["ALLOC_WMARK_LOW"],
            flags["ALLOC_WMARK_HIGH"]} <= set(range(flags["ALLOC_NO_WATERMARKS"])):
        out.append("a watermark index does not fit under ALLOC_WMARK_MASK")
    bits = {k: v for k, v in flags.items() if not k.startswith("ALLOC_WMARK")
            and k != "ALLOC_RESERVES"}
    for name, v in bits.items():
        if v <= 0 or v & (v - 1):
            out.append(f"{name} = {v:#x} is not a single bit")
    values = sorted(bits.values())
    if len(set(values)) != len(values):
        out.append("two ALLOC_* flags share a bit")
    expect = (flags["ALLOC_NON_BLOCK"] | flags["ALLOC_MIN_RESERVE"] | flags["ALLOC_HIGHATOMIC"]
              | flags["ALLOC_OOM"])
    if flags["ALLOC_RESERVES"] != expect:
        out.append("ALLOC_RESERVES is not NON_BLOCK|MIN_RESERVE|HIGHATOMIC|OOM")
    return out
