"""Detection rules: the registry and the built-in rules.

Each rule family lives in its own module and registers itself by name:

- :mod:`~alliance_ts.rules.vshape` -- drop-and-return episodes (``vshape``)
  and the presets ``stiles2004``, ``strauss2006`` and ``gumz2012``;
- :mod:`~alliance_ts.rules.sudden_loss` -- Tang & DeRubeis' criteria on
  alliance drops (``sudden_loss``);
- :mod:`~alliance_ts.rules.changepoint` -- episodes read off an exact
  change-point segmentation (``changepoint``);
- :mod:`~alliance_ts.rules.robust` -- drops scaled by a robust noise
  estimate with a per-client false-alarm bound (``robust``, the library's
  own rule);
- :mod:`~alliance_ts.rules.scan` -- rupture shapes tested under each
  client's moderated AR(1) noise at a calibrated false-alarm level
  (``scan``, the library's own rule);
- :mod:`~alliance_ts.rules.psq` -- self-reported ruptures from the
  Post-Session Questionnaire (``psq``);
- :mod:`~alliance_ts.rules.observer` -- observer-coded ruptures (3RS
  segment codes; ``observer`` and the preset ``observer_significant``).
"""

from ._base import (
    BlockResult,
    Reads,
    Rule,
    RuleSpec,
    get_rule,
    list_rules,
    register_preset,
    register_rule,
    result_problems,
    scan_episodes,
    unregister_rule,
)
from .changepoint import ChangePoint
from .observer import Observer
from .psq import Psq
from .robust import RobustDrop
from .scan import Scan
from .sudden_loss import SuddenLoss
from .vshape import VShape

#: The rule :func:`alliance_ts.detect` uses when none is named (chosen with the
#: accuracy benchmark; see docs/benchmarks.md).
DEFAULT_RULE = "scan"

__all__ = [
    "DEFAULT_RULE",
    "BlockResult",
    "ChangePoint",
    "Observer",
    "Psq",
    "Reads",
    "Rule",
    "RobustDrop",
    "RuleSpec",
    "Scan",
    "SuddenLoss",
    "VShape",
    "get_rule",
    "list_rules",
    "register_preset",
    "register_rule",
    "result_problems",
    "scan_episodes",
    "unregister_rule",
]
