"""Alliance instruments and their score ranges.

``detect(..., scale=...)`` accepts an instrument id from this registry, a
``(low, high)`` pair, or ``None`` (no range check). An id names the *total*
score range where the instrument is conventionally scored as a sum, and the
item-mean range where it is conventionally scored as a mean; append
``":total"`` or ``":mean"`` to choose explicitly (``"wai-sr:mean"`` is 1–5).

Higher scores mean a better alliance on every instrument listed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

__all__ = ["Scale", "get_scale", "list_scales", "ScoreRange"]


@dataclass(frozen=True)
class ScoreRange:
    """A closed score range ``[low, high]`` and where it comes from."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class Scale:
    """One alliance instrument.

    Attributes
    ----------
    id : str
        Registry id (lower case).
    name : str
        Full name and version.
    items : int
        Number of items.
    item_low, item_high : float
        Response range of one item.
    default : {"total", "mean"}
        Which range ``scale=id`` means without a suffix.
    reference : str
        Source of the instrument.
    notes : str
        Practical notes (ceiling effects, cut-offs).
    """

    id: str
    name: str
    items: int
    item_low: float
    item_high: float
    default: str
    reference: str
    notes: str = ""

    @property
    def total(self) -> ScoreRange:
        """The range of the sum of all items."""
        return ScoreRange(
            self.items * self.item_low, self.items * self.item_high, f"{self.id}:total"
        )

    @property
    def mean(self) -> ScoreRange:
        """The range of the mean of all items (equal to one item's range)."""
        return ScoreRange(self.item_low, self.item_high, f"{self.id}:mean")


_SCALES: dict[str, Scale] = {
    s.id: s
    for s in [
        Scale(
            "wai", "Working Alliance Inventory (full form)", 36, 1, 7, "total",
            "Horvath, A. O., & Greenberg, L. S. (1989). Development and validation of the "
            "Working Alliance Inventory. Journal of Counseling Psychology, 36(2), 223-233.",
        ),
        Scale(
            "wai-s", "Working Alliance Inventory, short form", 12, 1, 7, "total",
            "Tracey, T. J., & Kokotovic, A. M. (1989). Factor structure of the Working "
            "Alliance Inventory. Psychological Assessment, 1(3), 207-210.",
        ),
        Scale(
            "wai-sr", "Working Alliance Inventory, short revised", 12, 1, 5, "total",
            "Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a "
            "revised short version of the Working Alliance Inventory. Psychotherapy "
            "Research, 16(1), 12-25.",
        ),
        Scale(
            "srs", "Session Rating Scale, version 3", 4, 0, 10, "total",
            "Duncan, B. L., Miller, S. D., Sparks, J. A., Claud, D. A., Reynolds, L. R., "
            "Brown, J., & Johnson, L. D. (2003). The Session Rating Scale. Journal of "
            "Brief Therapy, 3(1), 3-12.",
            "Strong ceiling: most sessions score 36-40; a total of 36 or less is read as a "
            "possible problem in the alliance.",
        ),
        Scale(
            "haq-ii", "Helping Alliance Questionnaire II", 19, 1, 6, "total",
            "Luborsky, L., Barber, J. P., Siqueland, L., Johnson, S., Najavits, L. M., "
            "Frank, A., & Daley, D. (1996). The revised Helping Alliance Questionnaire "
            "(HAq-II). Journal of Psychotherapy Practice and Research, 5(3), 260-271.",
        ),
        Scale(
            "calpas", "California Psychotherapy Alliance Scale", 24, 1, 7, "mean",
            "Gaston, L. (1991). Reliability and criterion-related validity of the "
            "California Psychotherapy Alliance Scales. Psychological Assessment, 3(1), "
            "68-74.",
            "Conventionally scored as item means (1-7).",
        ),
        Scale(
            "arm", "Agnew Relationship Measure", 28, 1, 7, "mean",
            "Agnew-Davies, R., Stiles, W. B., Hardy, G. E., Barkham, M., & Shapiro, D. A. "
            "(1998). Alliance structure assessed by the Agnew Relationship Measure (ARM). "
            "British Journal of Clinical Psychology, 37(2), 155-172.",
            "Used by Stiles et al. (2004); conventionally scored as item means (1-7).",
        ),
    ]
}


def get_scale(scale_id: str) -> Scale:
    """Look up an instrument by id (case-insensitive, without a suffix).

    Raises
    ------
    KeyError
        If the id is unknown; the message lists the valid ids.
    """
    key = scale_id.strip().lower()
    if key not in _SCALES:
        raise KeyError(f"unknown scale {scale_id!r}; valid ids: {', '.join(_SCALES)}")
    return _SCALES[key]


def list_scales() -> pd.DataFrame:
    """All registered instruments as a table.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``name``, ``items``, ``item_low``, ``item_high``,
        ``total_low``, ``total_high``, ``default`` (which range the bare id
        means), ``reference`` and ``notes``.

    Examples
    --------
    >>> import alliance_ts as at
    >>> at.list_scales().set_index("id").loc["srs", ["total_low", "total_high"]].tolist()
    [0.0, 40.0]
    """
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "items": s.items,
            "item_low": float(s.item_low),
            "item_high": float(s.item_high),
            "total_low": float(s.total.low),
            "total_high": float(s.total.high),
            "default": s.default,
            "reference": s.reference,
            "notes": s.notes,
        }
        for s in _SCALES.values()
    ]
    return pd.DataFrame(rows)


def resolve_scale(scale: object) -> tuple[ScoreRange | None, str | None]:
    """Turn a ``scale=`` argument into a range, or explain why it cannot.

    Returns ``(range, None)`` on success and ``(None, message)`` on failure so
    that the validator can collect the message with the other problems.
    """
    if scale is None:
        return None, None
    if isinstance(scale, ScoreRange):
        return scale, None
    if isinstance(scale, Scale):
        return (scale.total if scale.default == "total" else scale.mean), None
    if isinstance(scale, str):
        key, _, level = scale.strip().lower().partition(":")
        if key not in _SCALES:
            return None, (
                f"unknown instrument {scale!r}; valid ids: {', '.join(_SCALES)} "
                "(optionally with ':total' or ':mean'), or a (low, high) pair"
            )
        s = _SCALES[key]
        level = level or s.default
        if level not in ("total", "mean"):
            return None, f"unknown level {level!r} in {scale!r}; use ':total' or ':mean'"
        return (s.total if level == "total" else s.mean), None
    if isinstance(scale, (tuple, list)) and len(scale) == 2:
        try:
            low, high = float(scale[0]), float(scale[1])
        except (TypeError, ValueError):
            return None, f"a (low, high) scale needs two numbers, got {scale!r}"
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            return None, f"a (low, high) scale needs finite low < high, got {scale!r}"
        return ScoreRange(low, high, f"({low:g}, {high:g})"), None
    return None, (
        f"scale must be an instrument id, a (low, high) pair or None, got {scale!r}"
    )
