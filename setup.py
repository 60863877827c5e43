"""Optional mypyc build of the reference implementation's hot module.

Everything else about the distribution is in pyproject.toml. When mypy (mypyc) and a C
compiler are available (pyproject.toml's [build-system] asks for mypy), ``pip install`` and
``pip install -e`` compile ``reference/page_alloc.py`` to an extension module that Python
imports in place of the source. If compiling fails, or ``MMSPEC_PURE_PYTHON=1`` is set at
install time, the package installs as plain Python and ``reference.COMPILED`` is False.
The source is the same typed Python either way.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
#: The modules mypyc compiles (paths relative to the project root).
COMPILED_MODULES = ["reference/page_alloc.py"]
PURE = os.environ.get("MMSPEC_PURE_PYTHON", "").strip() not in ("", "0")


def _warn(message: str) -> None:
    print(f"mmspec setup.py: {message}", file=sys.stderr)


def _stale_artifacts() -> list[Path]:
    """Compiled files a previous in-place (editable) build left beside the sources."""
    out: list[Path] = []
    for module in COMPILED_MODULES:
        path = ROOT / module
        out += path.parent.glob(path.stem + ".*.so")
        out += path.parent.glob(path.stem + "__mypyc.*.so")
        out += path.parent.glob(path.stem + ".*.pyd")
        out += path.parent.glob(path.stem + "__mypyc.*.pyd")
    return out


def _remove_stale_artifacts() -> None:
    # An editable install imports from the source tree, where an extension module wins over
    # the .py: remove a previous build's, or a pure install would still run compiled code.
    for path in _stale_artifacts():
        _warn(f"removing {path.relative_to(ROOT)} from an earlier compiled build")
        path.unlink()


def _mypyc_extensions() -> list[Any]:
    if PURE:
        _warn("MMSPEC_PURE_PYTHON is set: installing the pure-Python reference")
        _remove_stale_artifacts()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available: installing the pure-Python reference")
        _remove_stale_artifacts()
        return []
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        # Imported modules (spec/) are type-checked for their types only: their own typing
        # is the project's mypy run's business, not a reason to give up compiling.
        return mypycify(["--config-file", "pyproject.toml", "--follow-imports=silent",
                         *COMPILED_MODULES], opt_level="3")
    except BaseException:  # mypyc reports type errors with SystemExit
        traceback.print_exc()
        _warn("mypyc could not translate the reference: installing it as pure Python")
        _remove_stale_artifacts()
        return []
    finally:
        os.chdir(cwd)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure-Python modules when the C build fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception:
            traceback.print_exc()
            _warn("compiling the reference failed: installing it as pure Python")
            self._discard()

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception:
            traceback.print_exc()
            _warn(f"compiling {ext.name} failed: installing the reference as pure Python")
            self._discard()
            raise

    def _discard(self) -> None:
        # All or nothing: a module whose shared library is missing would not import.
        built: list[Any] = list(self.extensions)
        for ext in built:
            for path in (Path(self.get_ext_fullpath(ext.name)),
                         ROOT / self.get_ext_filename(ext.name)):
                if path.exists():
                    path.unlink()
        _remove_stale_artifacts()
        self.extensions: list[Any] = []

    def get_outputs(self) -> list[str]:
        return super().get_outputs() if self.extensions else []


setup(ext_modules=_mypyc_extensions(), cmdclass={"build_ext": OptionalBuildExt})
