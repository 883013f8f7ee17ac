"""The ``df.alliance`` accessor: detection and plots from a long DataFrame.

Registered when :mod:`alliance_ts` is imported::

    import alliance_ts
    res = df.alliance.detect(rule="gumz2012", client="id", score="wai")
    df.alliance.plot("A-017", client="id", score="wai")
    problems = df.alliance.check(client="id", score="wai")
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .detect import detect
from .errors import Problem
from .result import Detection

__all__ = ["AllianceAccessor"]


@pd.api.extensions.register_dataframe_accessor("alliance")
class AllianceAccessor:
    """``df.alliance``: alliance_ts on a long DataFrame (one row per client x session)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def detect(self, rule: Any = None, **kwargs: Any) -> Detection:
        """:func:`alliance_ts.detect` on this table (same arguments).

        Examples
        --------
        >>> import pandas as pd
        >>> import alliance_ts
        >>> df = pd.DataFrame({"client": 1, "session": range(1, 7), "score": [50, 51, 38, 50, 51, 50]})
        >>> df.alliance.detect(rule="vshape", pooled_sd=1.0).episodes["start"].tolist()
        [3]
        """
        return detect(self._frame, rule, **kwargs)

    def check(self, *, client: str = "client", session: str = "session", score: str = "score",
              scale: Any = None) -> list[Problem]:
        """Every problem :func:`alliance_ts.detect` would report for this table (empty when valid).

        Examples
        --------
        >>> import pandas as pd
        >>> import alliance_ts
        >>> df = pd.DataFrame({"client": [1, 1], "session": [1, 1], "score": [50, "x"]})
        >>> [p.where for p in df.alliance.check()]
        ["column 'score'", "columns 'client' x 'session'"]
        """
        from .validation import read_panel

        _, problems = read_panel(self._frame, client=client, session=session, score=score, scale=scale)
        return problems

    def plot(self, client_id: Any, rule: Any = None, ax: Any = None, **kwargs: Any) -> Any:
        """Label the whole table and plot one client (:func:`alliance_ts.plot.trajectory`).

        The whole table is labelled, so rules with sample-wide estimates
        (such as a pooled SD) use the same values as in the batch.
        """
        from .plot import trajectory

        return trajectory(self.detect(rule, **kwargs), client_id, ax=ax)

    def overview(self, rule: Any = None, axes: Any = None, **kwargs: Any) -> Any:
        """Label the whole table and draw :func:`alliance_ts.plot.overview`."""
        from .plot import overview

        return overview(self.detect(rule, **kwargs), axes=axes)
