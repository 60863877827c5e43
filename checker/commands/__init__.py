"""Command plugins: each area adds its own ``mmspec`` subcommands here, without editing cli.py.

Every module in this package is imported when the command line is built. A module may
define any of these functions (``cli`` is the :mod:`checker.cli` module, which gives
``UsageError``, ``emit``, ``progress``, ``console`` and the ``EXIT_*`` codes):

``register(sub, cli)``
    add top-level subcommands to ``sub`` (the ``add_subparsers`` object of ``mmspec``), e.g.
    ``mmspec ksm ...``, ``mmspec trace ...``, ``mmspec prove``. Set ``func`` with
    ``set_defaults``; the function takes the parsed arguments and returns the exit status.
``register_explore(sub, cli)``
    add ``mmspec explore KIND`` subcommands (every explorer prints, with ``--json``,
    ``{"states": …, "depth": …, "states_per_s": …, "violations": [{"property": RULE-ID,
    "trace": […]}]}`` and exits 1 when it finds a violation).
``register_simulate(sub, cli)``
    add ``mmspec simulate KIND`` subcommands.
``verify_checks()``
    return ``[(name, run)]``: ``mmspec verify`` calls each ``run()``, which returns
    ``{"ok": bool, "detail": str, "violations": [{"rule": …, "message": …}, …]}`` and may add
    ``"skipped": reason``.

A lockstep area for ``mmspec fuzz AREA`` registers itself with
:func:`checker.fuzz.register_area` when its module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover() -> list[ModuleType]:
    """The plugin modules, imported, in name order."""
    out = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            out.append(importlib.import_module(f"{__name__}.{info.name}"))
    return out
