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
