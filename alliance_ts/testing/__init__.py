"""Property-based testing for detection rules (requires ``hypothesis``).

>>> from alliance_ts.testing import check_rule, RuleChecks, strategies

- :func:`check_rule` -- run the property suite against a rule in one call;
- :class:`RuleChecks` -- drop-in pytest tests, one per property;
- :mod:`~alliance_ts.testing.strategies` -- Hypothesis strategies for
  trajectories, long-format panels and planted episodes.

See ``docs/testing.md`` for a walk-through with a custom rule.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "alliance_ts.testing needs hypothesis: pip install 'alliance_ts[test]'"
    ) from exc

from . import strategies
from .checks import PROFILES, PROPERTIES, RuleCheckError, RuleChecks, check_rule, run_property

__all__ = ["PROFILES", "PROPERTIES", "RuleCheckError", "RuleChecks", "check_rule", "run_property", "strategies"]
