"""What every detection rule is made of.

A rule is a small frozen dataclass of keyword parameters plus one method,
:meth:`Rule.label`, that labels a :class:`~alliance_ts.panel.Block` of whole
clients at once and returns a :class:`BlockResult` (episodes as positions in
each client's observed scores). Rules never see DataFrames, column names or
the user's session labels; :mod:`alliance_ts.result` turns their output into
the public tables.

A rule declares what it reads (:meth:`Rule.reads`: the session score, or
named questionnaire items with an optional rater column) and its parameters
(fields made with :mod:`alliance_ts.params`, which give their checks, their
``list_rules()`` entry, their command-line parsing and their docs table).

Rules are registered by name with :func:`register_rule`; a *preset* is a
named bundle of parameter values for a registered rule class
(:func:`register_preset`).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import Problem, UnknownRuleError
from ..panel import Block, Panel
from ..params import parameters

__all__ = [
    "BlockResult",
    "Reads",
    "Rule",
    "RuleSpec",
    "get_rule",
    "list_rules",
    "make_rule",
    "register_preset",
    "register_rule",
    "result_problems",
    "scan_episodes",
    "unregister_rule",
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
class Reads:
    """What a rule reads from each row of the input table.

    The default reads one score per session (the ``score`` column of
    :func:`~alliance_ts.detect`). A rule that reads several answers per
    session names them in ``items``; the pipeline validates those columns
    (numbers within ``item_range``), treats a session as observed when any
    item is answered, hands the rule each item as a block array
    (``block.items``) and copies the items into the ``sessions`` table.

    Attributes
    ----------
    items : tuple of (name, column)
        The items read; empty for a score rule.
    group : str or None
        Column whose values split a client into separate courses (each
        rater's answers are one course); every table then gets a column
        ``group_name``.
    group_name : str
        Output name of the grouping column.
    item_range : (float, float) or None
        Lowest and highest valid answer codes.
    score_items : tuple of str
        Items whose highest answer is the session's ``score`` in the
        ``sessions`` table (score rules: the score itself).
    unit : str
        What an observed session is called in the ``reason`` of clients
        with too few (``"observed scores"``).
    label : str
        The ``input`` column of :func:`list_rules`.
    uses_scale : bool
        Whether ``scale=`` applies (score rules).
    segments : alliance_ts.segments.Segments or None
        Rows are segments of sessions (observer codes), made into one row
        per session holding ``items`` before anything else
        (:mod:`alliance_ts.segments`); the items' columns are then their
        names.
    hint : str
        How to name the columns, for the message about missing columns.
    """

    items: tuple[tuple[str, str], ...] = ()
    group: str | None = None
    group_name: str = "rater"
    item_range: tuple[float, float] | None = None
    score_items: tuple[str, ...] = ()
    unit: str = "observed scores"
    label: str = "scores"
    uses_scale: bool = True
    segments: Any = None
    hint: str = ""

    @property
    def scores(self) -> bool:
        """True for a rule that reads the session score."""
        return not self.items


@dataclass(frozen=True)
class Rule(abc.ABC):
    """Base class of detection rules.

    Subclasses are frozen dataclasses whose fields are the rule's keyword
    parameters (no logic in ``__init__``). They implement :meth:`label` and,
    where parameter values can be invalid, :meth:`check`.

    Attributes
    ----------
    invariances : tuple of str
        Transformations of the scores that provably leave the episodes
        unchanged: ``"translation"`` (adding a constant) and/or ``"scaling"``
        (multiplying by a positive constant). Used by the property checks.
    strictness : str, (str, "up" | "down"), or None
        A parameter that makes the rule stricter: a larger value (``"up"``,
        the default) or a smaller one (``"down"``) never flags more clients.
    detects : tuple of str
        Kinds of unmistakable episode the rule promises to find: ``"v"`` (a
        one-session drop repaired at the next session) and/or
        ``"sustained"`` (a drop that never recovers). Used by the property
        checks.
    sample_dependent : tuple of str
        Parameters that, when left at None, are estimated from the whole
        input (so one client's result depends on the others unless set).
    needs_moments : bool
        Whether :meth:`label` reads ``block.mean`` / ``block.sd``.
    trusted_output : bool
        Skip the check of every block result in :func:`~alliance_ts.detect`
        (set by the built-in rules, whose output the test suite and the
        property checks verify; leave False for your own rules).
    client_columns, session_columns : dict of str -> dtype
        Extra columns this rule adds to ``clients`` / ``sessions``.
    episode_columns : dict of str -> dtype
        Extra columns this rule adds to ``episodes``.
    """

    invariances: ClassVar[tuple[str, ...]] = ()
    strictness: ClassVar[str | tuple[str, str] | None] = None
    detects: ClassVar[tuple[str, ...]] = ()
    sample_dependent: ClassVar[tuple[str, ...]] = ()
    needs_moments: ClassVar[bool] = False
    trusted_output: ClassVar[bool] = False
    client_columns: ClassVar[dict[str, str]] = {}
    session_columns: ClassVar[dict[str, str]] = {}
    episode_columns: ClassVar[dict[str, Any]] = {}

    def reads(self) -> Reads:
        """What the rule reads from each row (default: the session score)."""
        return Reads()

    def check(self) -> list[Problem]:
        """Problems with the parameter values (empty when all are valid).

        Checks every declared parameter against its declaration; rules with
        constraints between parameters extend it (``super().check() + ...``).
        """
        problems: list[Problem] = []
        for p in parameters(type(self)):
            problems += p.check(getattr(self, p.name))
        return problems

    def prepare(self, panel: Panel, clients: np.ndarray) -> Rule:
        """Fill in parameters estimated from the whole input.

        Called once per :func:`~alliance_ts.detect` call, before any block is
        labelled, with a panel holding the sample of analysed clients and
        their codes in it (every analysed client, or, for very large inputs,
        a subset chosen by the clients' data: see :mod:`alliance_ts.sample`);
        returns a rule with those parameters fixed, so that splitting the
        clients into blocks, chunks or partitions cannot change any result.
        The panel's client ids are not the user's ids (they may be 0, 1, 2,
        ...); estimates must depend only on the clients' scores, never on
        their ids or their order (use order-free reductions such as
        :func:`math.fsum`, and :func:`alliance_ts.sample.thin` to draw a
        subsample).
        """
        return self

    def needs_sample(self) -> bool:
        """Whether :meth:`prepare` estimates anything from the sample.

        False for a rule that does not override :meth:`prepare`, or whose
        ``sample_dependent`` parameters are all given; then no sample is drawn
        (it costs a pass over every analysed client's scores on large inputs).
        Rules whose need depends on other parameters refine this.
        """
        if type(self).prepare is Rule.prepare:
            return False
        if not self.sample_dependent:
            return True
        return any(getattr(self, name) is None for name in self.sample_dependent)

    def session_score(self, items: dict[str, np.ndarray]) -> np.ndarray:
        """The ``score`` of each session row for a rule that reads items.

        The highest answer of the items named in ``reads().score_items``
        (NaN when none is answered).
        """
        names = [n for n in self.reads().score_items if n in items]
        if not names:
            return np.full(len(next(iter(items.values()))) if items else 0, np.nan)
        with np.errstate(invalid="ignore"):
            return np.fmax.reduce([items[n] for n in names]) if len(names) > 1 else items[names[0]].copy()

    @abc.abstractmethod
    def label(self, block: Block) -> BlockResult:
        """Find the episodes of every client in ``block``."""

    def rescaled(self, factor: float) -> Rule:
        """This rule for scores multiplied by ``factor`` (> 0).

        Sample-dependent parameters (see ``sample_dependent``) that are SDs in
        score units are multiplied; rules whose estimates are not all in score
        units override this. Used by the scaling-invariance property check.
        """
        changes = {}
        for name in self.sample_dependent:
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                changes[name] = value * factor
        return dataclasses.replace(self, **changes) if changes else self

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
        base = {p.name: p.default for p in parameters(self.cls)}
        base.update(self.defaults)
        return base


_REGISTRY: dict[str, RuleSpec] = {}


def register_rule(
    name: str,
    *,
    summary: str,
    reference: str,
    family: str | None = None,
    invariances: tuple[str, ...] | None = None,
    strictness: str | tuple[str, str] | None = None,
    detects: tuple[str, ...] | None = None,
):
    """Decorator: register a rule under ``name`` for :func:`~alliance_ts.detect`.

    Decorate either

    - a :class:`Rule` subclass (a frozen dataclass of parameters with a
      vectorised :meth:`Rule.label`), or
    - a plain function ``f(scores, *, param=default, ...)`` of one client's
      observed scores that returns that client's episodes as
      ``(start, end)`` or ``(start, end, pre)`` position tuples (``end`` None
      when unresolved); its keyword-only arguments become the rule's
      parameters. The function is returned unchanged, with the generated
      rule class as its ``rule_class`` attribute.

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
    invariances, strictness, detects : optional
        The rule's declared properties (see :class:`Rule`), checked by
        :func:`alliance_ts.testing.check_rule`; for a class they override its
        class attributes.

    Examples
    --------
    >>> import alliance_ts as at
    >>> @at.register_rule("doc_big_drop", summary="A fall of at least `size` points.",
    ...                   reference="documentation example")
    ... def big_drop(scores, *, size=10.0):
    ...     episodes, i = [], 1
    ...     while i < len(scores):
    ...         if scores[i - 1] - scores[i] >= size:
    ...             back = [j for j in range(i + 1, len(scores)) if scores[j] >= scores[i - 1]]
    ...             episodes.append((i, back[0] if back else None))
    ...             if not back:
    ...                 break
    ...             i = back[0]
    ...         i += 1
    ...     return episodes
    >>> at.detect([50, 50, 38, 45, 51, 50], rule="doc_big_drop").episodes[["start", "end", "status"]]
       start  end    status
    0      3    5  repaired
    >>> at.unregister_rule("doc_big_drop")
    """

    def declare(cls):
        for attr, value in (("invariances", invariances), ("strictness", strictness), ("detects", detects)):
            if value is not None:
                setattr(cls, attr, tuple(value) if attr != "strictness" else value)

    def decorate(obj):
        if isinstance(obj, type):
            if not issubclass(obj, Rule):
                raise TypeError(f"@register_rule needs a Rule subclass or a function, got {obj!r}")
            if not dataclasses.is_dataclass(obj):
                raise TypeError(f"{obj.__name__} must be a (frozen) dataclass")
            declare(obj)
            _add(RuleSpec(name, obj, {}, family or name, summary, reference))
            return obj
        if callable(obj):
            from ._function import rule_class_from_function

            cls = rule_class_from_function(obj, name)
            declare(cls)
            _add(RuleSpec(name, cls, {}, family or name, summary, reference))
            obj.rule_class = cls
            return obj
        raise TypeError(f"@register_rule needs a Rule subclass or a function, got {obj!r}")

    return decorate


def unregister_rule(name: str) -> None:
    """Remove a registered rule or preset (for tests and interactive sessions).

    Raises
    ------
    UnknownRuleError
        If no rule has that name.
    """
    get_rule(name)
    del _REGISTRY[name]


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
    old = _REGISTRY.get(spec.name)
    if old is not None and old.cls is not spec.cls and old.cls.__qualname__ != spec.cls.__qualname__:
        raise ValueError(
            f"a different rule is already registered as {spec.name!r}; "
            "choose another name or remove it with unregister_rule()"
        )
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
    if not isinstance(name, str):
        return None, [Problem("parameter 'rule'", f"must be a rule name (a string) or a Rule object, got {name!r}; "
                              f"valid rules: {', '.join(sorted(_REGISTRY))}")]
    if name not in _REGISTRY:
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
        ``name``, ``family``, ``summary``, ``reference``, ``parameters``
        (the default values as ``"k=2.0, sd='max', ..."``) and ``input``
        (``"scores"``, or ``"psq"`` for questionnaire answers).

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
            "input": _reads_label(s),
        }
        for s in _REGISTRY.values()
    ]
    return (
        pd.DataFrame(rows, columns=["name", "family", "summary", "reference", "parameters", "input"])
        .sort_values(["family", "name"], kind="stable")
        .reset_index(drop=True)
    )


def _reads_label(spec: RuleSpec) -> str:
    try:
        return spec.cls(**spec.defaults).reads().label
    except TypeError:  # a function rule with a required parameter
        return "scores"


# --------------------------------------------------------------------------
# checking what a rule returns


def result_problems(block: Block, res: BlockResult, scores: bool = True) -> list[tuple[int, str]]:
    """Ways ``res`` breaks the episode model, as (block row or -1, message).

    Checks that the rule answered for exactly the block's clients, that every
    episode lies inside its client's scores with start <= trough < end, and
    that a client's episodes do not overlap (nothing after an unresolved one).
    """
    m = block.n.size
    out: list[tuple[int, str]] = []
    if res.clients.shape != block.clients.shape or not np.array_equal(res.clients, block.clients):
        return [(-1, f"answered for {res.clients.size} clients, but the block holds {m}: clients were lost or added")]
    k = res.ep_row.size
    arrays = (res.ep_start, res.ep_trough, res.ep_end, res.ep_pre)
    if any(a.shape != (k,) for a in arrays):
        return [(-1, "episode arrays of different lengths")]
    if res.reason is not None and res.reason.shape != (m,):
        out.append((-1, f"{res.reason.size} reasons for {m} clients"))
    for name, col in res.client_extra.items():
        if np.shape(col) != (m,):
            out.append((-1, f"client column {name!r} has {np.size(col)} values for {m} clients"))
    for name, col in res.session_extra.items():
        if np.shape(col) != block.x.shape:
            out.append((-1, f"session column {name!r} has shape {np.shape(col)}, expected {block.x.shape}"))
    if k == 0:
        return out
    bad_row = (res.ep_row < 0) | (res.ep_row >= m)
    if bad_row.any():
        return out + [(-1, f"{int(bad_row.sum())} episode(s) for clients that are not in the block")]
    n = block.n[res.ep_row]
    st, tr, en = res.ep_start, res.ep_trough, res.ep_end
    checks = [
        ((st < 0) | (st >= n), "an episode starts outside the client's scores"),
        ((tr < st) | (tr >= n), "the trough is not between the start and the last score"),
        ((en != -1) & ((en <= tr) | (en >= n)), "the repair is not after the trough and within the client's scores"),
    ]
    if scores:
        checks.append((~np.isfinite(res.ep_pre), "an episode has no finite pre-rupture level"))
    for mask, msg in checks:
        for i in np.flatnonzero(mask)[:3]:
            out.append((int(res.ep_row[i]), msg))
    order = np.lexsort((st, res.ep_row))
    r, s_, e = res.ep_row[order], st[order], en[order]
    same = r[1:] == r[:-1]
    overlap = same & ((e[:-1] == -1) | (s_[1:] <= e[:-1]))
    for i in np.flatnonzero(overlap)[:3]:
        out.append((int(r[i]), "episodes overlap (or one follows an unresolved episode)"))
    return out


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
    eps: np.ndarray | None = None,
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
    eps : ndarray (m,), optional
        Per-client resolution (:attr:`~alliance_ts.panel.Block.resolution`):
        a score within ``eps`` of the return level has returned, and a score
        must be more than ``eps`` below the trough to be a new trough.

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
            x[active], n[active], onset[active], start[active], pre[active], ret[active], window,
            None if eps is None else eps[active],
        ) if active.size else (np.zeros(0, dtype=np.int64),) * 4 + (np.zeros(0),)
        return active[r], st, tr, en, pr
    in_ep = np.zeros(m, dtype=bool)  # inside an episode
    dead = np.zeros(m, dtype=bool)  # unresolved for good: no further episode
    ep_start = np.zeros(m, dtype=np.int64)
    ep_pre = np.zeros(m)
    ep_ret = np.zeros(m)
    tr_pos = np.zeros(m, dtype=np.int64)
    tr_val = np.zeros(m)
    tol = np.zeros(m) if eps is None else np.asarray(eps, dtype=float)
    rows, starts, troughs, ends, pres = [], [], [], [], []
    with np.errstate(invalid="ignore"):
        for j in range(length):
            xj = x[:, j]  # NaN after a client's last score: every comparison is False
            back = in_ep & (xj >= ep_ret - tol)
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
            deeper = (in_ep | dead) & (xj < tr_val - tol)
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
