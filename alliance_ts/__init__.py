"""alliance_ts: therapeutic-alliance ruptures, repairs and unresolved ruptures.

Find rupture and repair episodes in session-by-session alliance scores with
the published detection rules, and report them in tables a Methods section
can explain.

>>> import alliance_ts as at
>>> res = at.detect([5.0, 5.1, 5.0, 3.2, 5.0, 5.1], rule="vshape", pooled_sd=0.2)
>>> res.clients.loc[0, "pattern"]
'repaired'
"""

# first: when the alliance-ts script starts, a Ctrl-C during the imports below ends it with a message
from . import (
    _startup,  # noqa: F401
    effects,
    plot,
)
from . import accessor as _accessor  # noqa: F401  (registers df.alliance)
from ._version import __version__
from .compare import Agreement, agreement
from .convergence import Convergence, carry_type, convergence
from .detect import detect
from .errors import AllianceError, AllianceWarning, InvalidInputError, Problem, RuleError, UnknownRuleError
from .evaluate import Evaluation, evaluate
from .input import to_long
from .monitor import Alerts, Monitor, caseload, fit_prior, list_monitor_rules, monitor
from .reliability import CoderAgreement, coder_agreement
from .result import Detection
from .rules import DEFAULT_RULE, Rule, list_rules, register_preset, register_rule, unregister_rule
from .scales import Scale, get_scale, list_scales
from .segment import segment
from .shape import classify_shape
from .simulate import Simulation, simulate

__all__ = [
    "DEFAULT_RULE",
    "Agreement",
    "CoderAgreement",
    "Convergence",
    "Alerts",
    "AllianceError",
    "AllianceWarning",
    "Detection",
    "Evaluation",
    "InvalidInputError",
    "Monitor",
    "Problem",
    "Rule",
    "RuleError",
    "Scale",
    "Simulation",
    "UnknownRuleError",
    "__version__",
    "agreement",
    "caseload",
    "carry_type",
    "classify_shape",
    "coder_agreement",
    "convergence",
    "detect",
    "effects",
    "plot",
    "evaluate",
    "fit_prior",
    "get_scale",
    "list_rules",
    "list_monitor_rules",
    "list_scales",
    "monitor",
    "simulate",
    "register_preset",
    "register_rule",
    "segment",
    "to_long",
    "unregister_rule",
]
