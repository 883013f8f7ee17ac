"""alliance_ts: therapeutic-alliance ruptures, repairs and unresolved ruptures.

Find rupture and repair episodes in session-by-session alliance scores with
the published detection rules, and report them in tables a Methods section
can explain.

>>> import alliance_ts as at
>>> res = at.detect([5.0, 5.1, 5.0, 3.2, 5.0, 5.1], rule="vshape", pooled_sd=0.2)
>>> res.clients.loc[0, "pattern"]
'repaired'
"""

from . import accessor as _accessor  # noqa: F401  (registers df.alliance)
from . import effects, plot
from ._version import __version__
from .compare import Agreement, agreement
from .detect import detect
from .errors import AllianceError, AllianceWarning, InvalidInputError, Problem, RuleError, UnknownRuleError
from .evaluate import Evaluation, evaluate
from .input import to_long
from .result import Detection
from .rules import DEFAULT_RULE, Rule, list_rules, register_preset, register_rule, unregister_rule
from .scales import Scale, get_scale, list_scales
from .segment import segment
from .shape import classify_shape
from .simulate import Simulation, simulate

__all__ = [
    "DEFAULT_RULE",
    "Agreement",
    "AllianceError",
    "AllianceWarning",
    "Detection",
    "Evaluation",
    "InvalidInputError",
    "Problem",
    "Rule",
    "RuleError",
    "Scale",
    "Simulation",
    "UnknownRuleError",
    "__version__",
    "agreement",
    "classify_shape",
    "detect",
    "effects",
    "plot",
    "evaluate",
    "get_scale",
    "list_rules",
    "list_scales",
    "simulate",
    "register_preset",
    "register_rule",
    "segment",
    "to_long",
    "unregister_rule",
]
