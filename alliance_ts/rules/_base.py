"""What every detection rule is made of.

A rule is a small frozen dataclass of keyword parameters plus one method,
:meth:`Rule.label`, that labels a :class:`~alliance_ts.panel.Block` of whole
clients at once and returns a :class:`BlockResult` (episodes as positions in
each client's observed scores). Rules never see DataFrames, column names or
the user's session labels; :mod:`alliance_ts.result` turns their output into
the public tables.

Rules are registered by name with :func:`register_rule`; a *preset* is a
named bundle of parameter values for a registered rule class
(:func:`register_preset`).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import Problem, UnknownRuleError
from ..panel import Block, Panel

__all__ = [
    "BlockResult",
    "Rule",
    "RuleSpec",
    "get_rule",
    "list_rules",
    "make_rule",
    "register_preset",
    "register_rule",
    "scan_episodes",
]


@dataclass(frozen=True, eq=False)
class BlockResult:
    """What a rule returns for one block.

    Positions index each client's observed scores (0 = first observed
    score), never session numbers.

    Attributes
    ----------
    clients : ndarray (m,)
        The block's client codes (copied from the block).
    ep_row, ep_start, ep_trough, ep_end : ndarray of int64 (k,)
        Block row and positions of each episode; ``ep_end`` is -1 for an
        unresolved episode.
    ep_pre : ndarray of float64 (k,)
        The pre-rupture reference level of each episode (score units).
    ep_extra : dict of name -> ndarray (k,)
        Rule-specific episode columns.
    reason : ndarray of object (m,)
        ``""`` for an analysed client, else why the rule could not analyse it.
    client_extra : dict of name -> ndarray (m,)
        Rule-specific client columns (reported for every client the rule saw).
    session_extra : dict of name -> ndarray (m, L)
        Rule-specific per-score columns, NaN where undefined.
    """

    clients: np.ndarray
    ep_row: np.ndarray
    ep_start: np.ndarray
    ep_trough: np.ndarray
    ep_end: np.ndarray
    ep_pre: np.ndarray
    ep_extra: dict[str, np.ndarray] = field(default_factory=dict)
    reason: np.ndarray | None = None
    client_extra: dict[str, np.ndarray] = field(default_factory=dict)
    session_extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_scan(cls, block: Block, scanned: tuple[np.ndarray, ...], **fields: Any) -> BlockResult:
        """Wrap the output of :func:`scan_episodes` for ``block``."""
        row, start, trough, end, pre = scanned
        return cls(
            clients=block.clients, ep_row=row, ep_start=start, ep_trough=trough,
            ep_end=end, ep_pre=pre, **fields,
        )


@dataclass(frozen=True)
class Rule(abc.ABC):
    """Base class of detection rules.

    Subclasses are frozen dataclasses whose fields are the rule's keyword
    parameters (no logic in ``__init__``). They implement :meth:`label` and,
    where parameter values can be invalid, :meth:`check`.

    Class attributes
    ----------------
    invariances : tuple of str
        Transformations of the scores that provably leave the episodes
        unchanged: ``"translation"`` (adding a constant) and/or ``"scaling"``
        (multiplying by a positive constant). Used by the property checks.
    strictness : str or None
        Name of a parameter for which a larger value never adds episodes.
    sample_dependent : tuple of str
        Parameters that, when left at None, are estimated from the whole
        input (so one client's result depends on the others unless set).
    needs_moments : bool
        Whether :meth:`label` reads ``block.mean`` / ``block.sd``.
    client_columns, session_columns : dict of str -> dtype
        Extra columns this rule adds to ``clients`` / ``sessions``.
    episode_columns : dict of str -> dtype
        Extra columns this rule adds to ``episodes``.
    """

    invariances: ClassVar[tuple[str, ...]] = ()
    strictness: ClassVar[str | None] = None
    sample_dependent: ClassVar[tuple[str, ...]] = ()
    needs_moments: ClassVar[bool] = False
    client_columns: ClassVar[dict[str, str]] = {}
    session_columns: ClassVar[dict[str, str]] = {}
    episode_columns: ClassVar[dict[str, str]] = {}

    def check(self) -> list[Problem]:
        """Problems with the parameter values (empty when all are valid)."""
        return []

    def prepare(self, panel: Panel, clients: np.ndarray) -> Rule:
        """Fill in parameters estimated from the whole input.

        Called once per :func:`~alliance_ts.detect` call, before any block is
        labelled, with the codes of the clients that will be analysed; returns
        a rule with those parameters fixed, so that splitting the clients
        into blocks, chunks or partitions cannot change any result.
        """
        return self

    @abc.abstractmethod
    def label(self, block: Block) -> BlockResult:
        """Find the episodes of every client in ``block``."""

    def params(self) -> dict[str, Any]:
        """Every parameter and its value."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class RuleSpec:
    """A registered rule name."""

    name: str
    cls: type[Rule]
    defaults: dict[str, Any]
    family: str
    summary: str
    reference: str

    def parameters(self) -> dict[str, Any]:
        """Every parameter with the value this name uses by default."""
        base = {f.name: f.default for f in dataclasses.fields(self.cls)}
        base.update(self.defaults)
        return base


_REGISTRY: dict[str, RuleSpec] = {}


def register_rule(name: str, *, summary: str, reference: str, family: str | None = None):
    """Class decorator: register a :class:`Rule` subclass under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``detect(..., rule=name)``.
    summary : str
        One line describing the criterion.
    reference : str
        Where it comes from (full citation, or "alliance_ts" for the
        library's own rules).
    family : str, optional
        Family name shown by :func:`list_rules` (default: ``name``).
    """

    def decorate(cls: type[Rule]) -> type[Rule]:
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            raise TypeError(f"@register_rule needs a Rule subclass, got {cls!r}")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a (frozen) dataclass")
        _add(RuleSpec(name, cls, {}, family or name, summary, reference))
        return cls

    return decorate


def register_preset(
    name: str, cls: type[Rule], params: dict[str, Any], *, summary: str, reference: str
) -> None:
    """Register ``name`` as ``cls`` with other default parameter values.

    Parameters
    ----------
    name : str
        The preset's name.
    cls : type
        A rule class registered with :func:`register_rule`.
    params : dict
        Parameter values that differ from (or pin) the class defaults.
    summary, reference : str
        As for :func:`register_rule`.
    """
    defaults = dict(params)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(defaults) - fields
    if unknown:
        raise TypeError(f"preset {name!r}: unknown parameters {sorted(unknown)}")
    family = next((s.family for s in _REGISTRY.values() if s.cls is cls), cls.__name__)
    _add(RuleSpec(name, cls, dict(defaults), family, summary, reference))


def _add(spec: RuleSpec) -> None:
    if spec.name in _REGISTRY and _REGISTRY[spec.name].cls is not spec.cls:
        raise ValueError(f"a different rule is already registered as {spec.name!r}")
    _REGISTRY[spec.name] = spec


def get_rule(name: str) -> RuleSpec:
    """The registered rule ``name``.

    Raises
    ------
    UnknownRuleError
        If no rule has that name (the message lists every valid name).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownRuleError([_unknown_rule_problem(name)], "alliance_ts") from None


def _unknown_rule_problem(name: object) -> Problem:
    return Problem(
        "parameter 'rule'",
        f"no rule named {name!r}; valid rules: {', '.join(sorted(_REGISTRY))}",
    )


def make_rule(name: str, params: dict[str, Any]) -> tuple[Rule | None, list[Problem]]:
    """Instantiate a registered rule with user parameters, collecting problems."""
    if not isinstance(name, str) or name not in _REGISTRY:
        return None, [_unknown_rule_problem(name)]
    spec = _REGISTRY[name]
    valid = [f.name for f in dataclasses.fields(spec.cls)]
    unknown = [p for p in params if p not in valid]
    problems = [
        Problem(
            f"parameter {p!r}",
            f"not a parameter of rule {name!r}; valid parameters: {', '.join(valid)}",
        )
        for p in unknown
    ]
    known = {k: v for k, v in params.items() if k in valid}
    rule = spec.cls(**{**spec.defaults, **known})
    problems += rule.check()
    return (None if unknown else rule), problems


def list_rules() -> pd.DataFrame:
    """Every registered rule and preset.

    Returns
    -------
    pandas.DataFrame
        One row per name, sorted by family then name, with columns
        ``name``, ``family``, ``summary``, ``reference`` and ``parameters``
        (the default values as ``"k=2.0, sd='max', ..."``).

    Examples
    --------
    >>> import alliance_ts as at
    >>> "sudden_loss" in set(at.list_rules()["name"])
    True
    """
    rows = [
        {
            "name": s.name,
            "family": s.family,
            "summary": s.summary,
            "reference": s.reference,
            "parameters": ", ".join(f"{k}={v!r}" for k, v in s.parameters().items()),
        }
        for s in _REGISTRY.values()
    ]
    return (
        pd.DataFrame(rows, columns=["name", "family", "summary", "reference", "parameters"])
        .sort_values(["family", "name"], kind="stable")
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------
# parameter checks shared by rules


def check_number(
    problems: list[Problem],
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    integer: bool = False,
) -> None:
    """Append a Problem unless ``value`` is a number in the given range."""
    if value is None and allow_none:
        return
    ok_type = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if ok_type and integer:
        ok_type = float(value).is_integer()
    if not ok_type or not math.isfinite(float(value)):
        kind = "a whole number" if integer else "a finite number"
        problems.append(
            Problem(f"parameter {name!r}", f"must be {kind}{' or None' if allow_none else ''}, got {value!r}")
        )
        return
    v = float(value)
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
        problems.append(
            Problem(f"parameter {name!r}", f"must be {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")
        )


def check_choice(problems: list[Problem], name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Append a Problem unless ``value`` is one of ``choices``."""
    if value not in choices:
        problems.append(
            Problem(f"parameter {name!r}", f"must be one of {', '.join(map(repr, choices))}; got {value!r}")
        )


# --------------------------------------------------------------------------
# the episode engine shared by the threshold rules


def scan_episodes(
    x: np.ndarray,
    n: np.ndarray,
    onset: np.ndarray,
    start: np.ndarray,
    pre: np.ndarray,
    ret: np.ndarray,
    window: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Turn per-position onset flags into non-overlapping episodes.

    Walks the positions of every client in order (vectorised over clients):

    * outside an episode, a position ``j`` with ``onset[:, j]`` opens one
      with first session ``start[:, j]``, reference level ``pre[:, j]`` and
      return level ``ret[:, j]``;
    * inside an episode, the first later position whose score is
      ``>= ret`` is the repair (``end``), provided it comes at most
      ``window`` positions after the trough; a later return makes the
      episode unresolved, and an unresolved episode lasts to the client's
      last score (no further episode can open);
    * the trough is the first position of the lowest score from the onset on
      (up to the session before the repair, or to the last score).

    Parameters
    ----------
    x : ndarray (m, L)
        Observed scores, NaN-padded after ``n``.
    n : ndarray (m,)
        Observed scores per client.
    onset : ndarray of bool (m, L)
    start : ndarray of int (m, L)
        First position of the episode that opens at each position.
    pre, ret : ndarray of float (m, L)
        Reference level and return level of that episode.
    window : int or None
        Maximum positions from trough to repair; None = any later session.

    Returns
    -------
    row, start, trough, end, pre : ndarray (k,)
        One entry per episode, in no particular order; ``end`` = -1 when
        unresolved.
    """
    m, length = x.shape
    active = np.flatnonzero(onset.any(axis=1))
    if active.size < m:
        # Only clients with at least one onset can have episodes: scan those.
        r, st, tr, en, pr = scan_episodes(
            x[active], n[active], onset[active], start[active], pre[active], ret[active], window
        ) if active.size else (np.zeros(0, dtype=np.int64),) * 4 + (np.zeros(0),)
        return active[r], st, tr, en, pr
    in_ep = np.zeros(m, dtype=bool)  # inside an episode
    dead = np.zeros(m, dtype=bool)  # unresolved for good: no further episode
    ep_start = np.zeros(m, dtype=np.int64)
    ep_pre = np.zeros(m)
    ep_ret = np.zeros(m)
    tr_pos = np.zeros(m, dtype=np.int64)
    tr_val = np.zeros(m)
    rows, starts, troughs, ends, pres = [], [], [], [], []
    with np.errstate(invalid="ignore"):
        for j in range(length):
            xj = x[:, j]  # NaN after a client's last score: every comparison is False
            back = in_ep & (xj >= ep_ret)
            if window is not None and back.any():
                late = back & (j - tr_pos > window)
                done = back & ~late
                dead |= late
                in_ep &= ~late
            else:
                done = back
            if done.any():
                idx = np.flatnonzero(done)
                rows.append(idx)
                starts.append(ep_start[idx])
                troughs.append(tr_pos[idx])
                ends.append(np.full(idx.size, j, dtype=np.int64))
                pres.append(ep_pre[idx])
                in_ep &= ~done
            deeper = (in_ep | dead) & (xj < tr_val)
            np.copyto(tr_pos, j, where=deeper)
            np.copyto(tr_val, xj, where=deeper)
            new = onset[:, j] & ~(in_ep | dead | done)
            if new.any():
                np.copyto(ep_start, start[:, j], where=new)
                np.copyto(ep_pre, pre[:, j], where=new)
                np.copyto(ep_ret, ret[:, j], where=new)
                np.copyto(tr_pos, j, where=new)
                np.copyto(tr_val, xj, where=new)
                in_ep |= new
    open_ = np.flatnonzero(in_ep | dead)
    rows.append(open_)
    starts.append(ep_start[open_])
    troughs.append(tr_pos[open_])
    ends.append(np.full(open_.size, -1, dtype=np.int64))
    pres.append(ep_pre[open_])
    return (
        np.concatenate(rows),
        np.concatenate(starts),
        np.concatenate(troughs),
        np.concatenate(ends),
        np.concatenate(pres),
    )
