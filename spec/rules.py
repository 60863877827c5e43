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
VARIANTS: tuple[str, ...] = ("v6.15", "v6.18")
DEFAULT_VARIANT = "v6.18"

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
         variants: tuple[str, ...] | None = None) -> Callable[[F], F]:
    """Register the decorated function as rule ``rule_id``; its docstring is the text."""

    def register(fn: F) -> F:
        _check_id(rule_id)
        text = inspect.cleandoc(fn.__doc__ or "")
        if not text:
            raise RuleError(f"rule {rule_id} has no normative docstring")
        RULES[rule_id] = Rule(rule_id, title, text, anchor, _variants(rule_id, variants),
                              fn.__module__, fn.__qualname__, fn)
        ids = getattr(fn, "__rules__", ())
        try:
            fn.__rules__ = (*ids, rule_id)  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return fn

    return register


def declare(rule_id: str, title: str, text: str, anchor: str, obj: Any = None,
            module: str = "", variants: tuple[str, ...] | None = None) -> Rule:
    """Register a rule whose subject is a table or constant rather than a function."""
    _check_id(rule_id)
    r = Rule(rule_id, title, inspect.cleandoc(text), anchor, _variants(rule_id, variants),
             module, "", obj)
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
)
