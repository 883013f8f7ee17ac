"""SciPy and scikit-learn modules imported on first use.

Importing ``scipy.stats`` alone takes about a second; most calls of the
command line (``alliance-ts rules``, an input error, ``alliance-ts monitor``)
never need it. The modules of the library use these stand-ins instead of
importing them at the top, so ``import alliance_ts`` stays fast and a
module is imported the first time one of its names is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["metrics", "optimize", "special", "stats"]


class _OnFirstUse:
    """A module imported when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


stats: Any = _OnFirstUse("scipy.stats")
special: Any = _OnFirstUse("scipy.special")
optimize: Any = _OnFirstUse("scipy.optimize")
metrics: Any = _OnFirstUse("sklearn.metrics")
