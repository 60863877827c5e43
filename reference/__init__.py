"""The optimized reference implementation: the spec's operations on flat arrays.

``reference.Zone(config)`` is a mutable zone with the same operations and observable behaviour
as :mod:`spec.page_alloc`; ``Zone.abstract()`` returns the spec's immutable value for it.

``reference.COMPILED`` says whether :mod:`reference.page_alloc` is the mypyc-compiled build
(``pip install`` compiles it when it can; ``MMSPEC_PURE_PYTHON=1`` at install time keeps it
plain Python). Both run the same typed source and behave the same.
"""

from importlib.machinery import EXTENSION_SUFFIXES

from reference import page_alloc as _page_alloc
from reference.page_alloc import Zone

#: True when the reference runs as a mypyc-compiled extension module.
COMPILED: bool = str(_page_alloc.__file__).endswith(tuple(EXTENSION_SUFFIXES))

__all__ = ["COMPILED", "Zone"]
