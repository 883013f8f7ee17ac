"""Exceptions and warnings raised by alliance_ts.

Every error a user can trigger with bad input subclasses the builtin they would
catch anyway (``ValueError``), so ``except ValueError`` keeps working, while
``except alliance_ts.AllianceError`` catches only this library's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AllianceError",
    "AllianceWarning",
    "FewClustersWarning",
    "InvalidInputError",
    "Problem",
    "RuleError",
    "SmallGroupWarning",
    "UnknownRuleError",
]


class AllianceError(Exception):
    """Base class of every exception raised on purpose by alliance_ts."""


class AllianceWarning(UserWarning):
    """Base class of every warning issued by alliance_ts (filter on this)."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating input.

    Attributes
    ----------
    where : str
        What the problem is about, e.g. ``"column 'score'"`` or
        ``"parameter 'k'"``.
    message : str
        What is wrong, including how many rows/clients are affected.
    examples : tuple of str
        Up to five example rows or clients, already formatted.
    """

    where: str
    message: str
    examples: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.examples:
            text += "; e.g. " + "; ".join(self.examples)
        return text


class InvalidInputError(AllianceError, ValueError):
    """Input data or parameters that cannot be analysed.

    Raised once per call, listing every problem found (the ``problems``
    attribute holds them as :class:`Problem` objects).
    """

    def __init__(self, problems: list[Problem], context: str = "alliance_ts") -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{context}: {n} problem{'s' if n != 1 else ''} with the input"
        lines = [head] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class UnknownRuleError(InvalidInputError, KeyError):
    """A rule name that is not registered (the message lists the valid ones)."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class RuleError(AllianceError, RuntimeError):
    """A rule returned a result that breaks the episode model.

    Raised by :func:`~alliance_ts.detect` when a (custom) rule reports, for
    example, overlapping episodes, a repair before the rupture, or results
    for the wrong clients. The message names the rule, the client and the
    problem.
    """


class SmallGroupWarning(AllianceWarning):
    """An effect size rests on a very small group of clients.

    Issued by :func:`alliance_ts.effects.outcome_association` when a
    two-group contrast is computed with a group of fewer than
    :data:`alliance_ts.effects.SMALL_GROUP` (10) clients, or ``n_repairs``
    over fewer than 10 clients. The estimate is still reported; its
    large-sample confidence interval is not to be trusted.
    """


class FewClustersWarning(AllianceWarning):
    """Too few clusters (therapists, sites) for the cluster-aware estimate.

    Issued by :func:`alliance_ts.effects.outcome_association` when an
    estimate rests on fewer than 10 clusters (mixed model) or 20 clusters
    (cluster-robust standard errors); see
    :data:`alliance_ts.effects.FEW_CLUSTERS`. The estimate is still reported.
    """
