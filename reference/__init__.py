"""The optimized reference implementation: the spec's operations on flat arrays.

``reference.Zone(config)`` is a mutable zone with the same operations and observable behaviour
as :mod:`spec.page_alloc`; ``Zone.abstract()`` returns the spec's immutable value for it.
"""

from reference.page_alloc import Zone

__all__ = ["Zone"]
