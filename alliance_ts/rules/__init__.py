"""Detection rules: the registry and the built-in rules.

Each rule family lives in its own module and registers itself by name:

- :mod:`~alliance_ts.rules.vshape` -- drop-and-return episodes (``vshape``)
  and the presets ``stiles2004``, ``strauss2006`` and ``gumz2012``;
- :mod:`~alliance_ts.rules.sudden_loss` -- Tang & DeRubeis' criteria on
  alliance drops (``sudden_loss``).
"""

from ._base import (
    BlockResult,
    Rule,
    RuleSpec,
    get_rule,
    list_rules,
    register_preset,
    register_rule,
    scan_episodes,
)
from .sudden_loss import SuddenLoss
from .vshape import VShape

#: The rule :func:`alliance_ts.detect` uses when none is named.
DEFAULT_RULE = "vshape"

__all__ = [
    "DEFAULT_RULE",
    "BlockResult",
    "Rule",
    "RuleSpec",
    "SuddenLoss",
    "VShape",
    "get_rule",
    "list_rules",
    "register_preset",
    "register_rule",
    "scan_episodes",
]
