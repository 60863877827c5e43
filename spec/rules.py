"""The rule registry: every normative statement of the spec has a stable ID.

IDs are ``AREA-KIND-NNN`` (AREA in ALLOC, NOLOCK, KSM, TIER, CORE; KIND in INV, OP,
POL, PROP). An ID is assigned once, by hand, and never reused or renumbered; it never
derives from a heading or a function name. The normative text is the docstring of the
registered object (or the ``text`` given to :func:`declare` for tables and constants).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

AREAS = ("ALLOC", "NOLOCK", "KSM", "TIER", "CORE")
KINDS = ("INV", "OP", "POL", "PROP")
RULE_ID = re.compile(r"^(ALLOC|NOLOCK|KSM|TIER|CORE)-(INV|OP|POL|PROP)-(\d{3})$")

#: Kernel-version variants of the ALLOC area. Behaviour that changed between releases
#: is a variant of one spec, never a fork of the code.
#: The reliable-huge-page series (J. Weiner, March 2025) appears as named variants:
#: ``v6.14`` before it, ``defrag_mode-original`` (patch 3 as first posted, with the
#: ``alloc_flags &= ALLOC_NOFRAGMENT`` slip), ``defrag_mode`` (patch 3 with the retry fix),
#: ``defrag_mode+async`` (patches 3-4), ``v6.15`` (the whole series and its 6.15-rc fixes),
#: ``v6.18``, and ``v6.18+atomic-fix`` (the 2026 fix for allocations that cannot reclaim).
VARIANTS: tuple[str, ...] = ("v6.14", "defrag_mode-original", "defrag_mode", "defrag_mode+async",
                             "v6.15", "v6.18", "v6.18+atomic-fix")
DEFAULT_VARIANT = "v6.18"

#: What each ALLOC variant has, by feature; code asks :func:`alloc_has` instead of comparing
#: variant names, so a new variant is one line here.
#:
#: ``defrag_mode``: the vm.defrag_mode knob and its allocator semantics (e3aa7df331bc);
#: ``defrag_retry_unchecked``: the first posting's last-ditch retry, ``alloc_flags &=
#: ALLOC_NOFRAGMENT`` taken unconditionally (fixed by 7a95a05f15d5);
#: ``kswapd_pageblock_order``: kswapd/kcompactd woken for whole pageblocks (101f9d666e4d);
#: ``pageblock_watermarks``: NR_FREE_PAGES_BLOCKS goals for kswapd/kcompactd (a211c6550efc,
#: with the 6.15-rc3 fix that uses it only for order > 0);
#: ``highatomic_min_reserve``: ALLOC_HIGHATOMIC only with __GFP_HIGH (6.18);
#: ``free_high_min``: the pcp free_high threshold batch + high_min/2 (6.16);
#: ``atomic_fix``: non-reclaiming allocations that may wake kswapd drop ALLOC_NOFRAGMENT
#: instead of failing (2026, Fixes: e3aa7df331bc).
_SERIES = ("defrag_mode", "kswapd_pageblock_order", "pageblock_watermarks")
ALLOC_VARIANT_FEATURES: dict[str, frozenset[str]] = {
    "v6.14": frozenset(),
    "defrag_mode-original": frozenset({"defrag_mode", "defrag_retry_unchecked"}),
    "defrag_mode": frozenset({"defrag_mode"}),
    "defrag_mode+async": frozenset({"defrag_mode", "kswapd_pageblock_order"}),
    "v6.15": frozenset(_SERIES),
    "v6.18": frozenset({*_SERIES, "highatomic_min_reserve", "free_high_min"}),
    "v6.18+atomic-fix": frozenset({*_SERIES, "highatomic_min_reserve", "free_high_min",
                                   "atomic_fix"}),
}


def alloc_has(variant: str, feature: str) -> bool:
    """Whether ALLOC ``variant`` has ``feature`` (see ALLOC_VARIANT_FEATURES)."""
    return feature in ALLOC_VARIANT_FEATURES[variant]


def alloc_base_variant(variant: str) -> str:
    """The variant name the ALLOC core's name comparisons understand (``v6.15``/``v6.18``).

    The core (gfp_to_alloc_flags, the pcp free_high threshold) tells 6.15 from 6.18 by name;
    variants before 6.16 behave as ``v6.15`` there.
    """
    return "v6.18" if alloc_has(variant, "highatomic_min_reserve") else "v6.15"

#: Variants per area. Each area registers its own names (``register_variants``); a rule
#: registered without ``variants`` applies to every variant of its area.
AREA_VARIANTS: dict[str, tuple[str, ...]] = {"ALLOC": VARIANTS}


def register_variants(area: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Declare the variants of ``area`` (idempotent for the same names)."""
    if area not in AREAS:
        raise RuleError(f"unknown area {area!r}")
    old = AREA_VARIANTS.get(area)
    if old is not None and old != tuple(names) and area != "ALLOC":
        raise RuleError(f"variants of {area} declared twice, differently")
    AREA_VARIANTS[area] = tuple(names)
    return AREA_VARIANTS[area]


def all_variants() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for names in AREA_VARIANTS.values():
        seen.update(dict.fromkeys(names))
    return tuple(seen)


class RuleError(Exception):
    """A rule was registered twice or with a malformed ID."""


@attrs.frozen
class Rule:
    id: str
    title: str
    text: str
    anchor: str
    variants: tuple[str, ...]
    module: str
    qualname: str
    obj: Any = attrs.field(eq=False, repr=False, default=None)
    #: Why this rule has no check that can fail (empty when it is checked). The rule book
    #: requires positive and negative evidence for every rule without such a reason.
    unchecked: str = ""

    @property
    def area(self) -> str:
        return self.id.split("-")[0]

    @property
    def kind(self) -> str:
        return self.id.split("-")[1]

    def source(self) -> str:
        """The code that states the rule (empty for declared tables)."""
        if self.obj is None or not callable(self.obj):
            return ""
        try:
            return inspect.getsource(self.obj)
        except (OSError, TypeError):
            return ""


RULES: dict[str, Rule] = {}

F = TypeVar("F", bound=Callable[..., Any])


def _check_id(rule_id: str) -> None:
    if not RULE_ID.match(rule_id):
        raise RuleError(f"malformed rule ID {rule_id!r} (want AREA-KIND-NNN)")
    if rule_id in RULES:
        raise RuleError(f"rule ID {rule_id} registered twice")


def _variants(rule_id: str, variants: tuple[str, ...] | None) -> tuple[str, ...]:
    area = rule_id.split("-")[0]
    known = AREA_VARIANTS.get(area, (DEFAULT_VARIANT,))
    if variants is None:
        return known
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise RuleError(f"rule {rule_id}: unknown {area} variants {unknown} (known: {known})")
    return tuple(variants)


def rule(rule_id: str, title: str, anchor: str,
         variants: tuple[str, ...] | None = None, unchecked: str = "") -> Callable[[F], F]:
    """Register the decorated function as rule ``rule_id``; its docstring is the text."""

    def register(fn: F) -> F:
        _check_id(rule_id)
        text = inspect.cleandoc(fn.__doc__ or "")
        if not text:
            raise RuleError(f"rule {rule_id} has no normative docstring")
        RULES[rule_id] = Rule(rule_id, title, text, anchor, _variants(rule_id, variants),
                              fn.__module__, fn.__qualname__, fn, unchecked)
        ids = getattr(fn, "__rules__", ())
        try:
            fn.__rules__ = (*ids, rule_id)  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return fn

    return register


def declare(rule_id: str, title: str, text: str, anchor: str, obj: Any = None,
            module: str = "", variants: tuple[str, ...] | None = None,
            unchecked: str = "") -> Rule:
    """Register a rule whose subject is a table or constant rather than a function."""
    _check_id(rule_id)
    r = Rule(rule_id, title, inspect.cleandoc(text), anchor, _variants(rule_id, variants),
             module, "", obj, unchecked)
    RULES[rule_id] = r
    return r


def rules_of(obj: Any) -> tuple[str, ...]:
    """The rule IDs registered on a function."""
    return tuple(getattr(obj, "__rules__", ()))


def load_all() -> dict[str, Rule]:
    """Import every module that registers rules, and return the registry."""
    import importlib
    import pkgutil

    import spec

    for info in sorted(pkgutil.iter_modules(spec.__path__), key=lambda m: m.name):
        importlib.import_module(f"spec.{info.name}")
    for name in RULE_MODULES:
        importlib.import_module(name)
    return RULES


#: Modules outside ``spec`` that register rules (every ``spec`` module is imported anyway).
#: ``mmspec spec list`` imports all of them.
RULE_MODULES: tuple[str, ...] = (
    "checker.snapshot",
    "checker.trace",
)
