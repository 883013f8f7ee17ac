"""Input shapes: single series, Series with session index, wide tables, scales."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError


def test_list_array_and_series_are_one_client():
    x = [5.0, 5.1, 5.0, 3.2, 5.0, 5.1]
    for data in (x, np.array(x), tuple(x)):
        res = at.detect(data, rule="vshape", pooled_sd=0.2)
        assert res.sessions["client"].tolist() == [0] * 6
        assert res.sessions["session"].tolist() == [1, 2, 3, 4, 5, 6]
    s = pd.Series(x, index=[3, 4, 5, 6, 8, 9])
    res = at.detect(s, rule="vshape", pooled_sd=0.2)
    assert res.sessions["session"].tolist() == [3, 4, 5, 6, 8, 9]
    # the dip at session 6 (position 4 of the index) is the episode start
    assert res.episodes[["start", "end"]].values.tolist() == [[6, 8]]


def test_to_long_reads_session_numbers_from_names():
    wide = pd.DataFrame({"pid": ["p2", "p1"], "srs_s10": [38, 30], "srs_s2": [39.5, None], "srs_s1": [40, 35]})
    long = at.to_long(wide, client="pid")
    assert long.columns.tolist() == ["pid", "session", "score"]
    assert long["pid"].tolist() == ["p1"] * 3 + ["p2"] * 3
    assert long["session"].tolist() == [1, 2, 10, 1, 2, 10]
    assert long["score"].fillna(-1).tolist() == [35.0, -1, 30.0, 40.0, 39.5, 38.0]
    assert len(long) == 6
    assert len(at.to_long(wide, client="pid", dropna=True)) == 5


def test_to_long_explicit_sessions_and_errors():
    wide = pd.DataFrame({"id": [1], "pre": [3.0], "mid": [4.0], "post": [5.0]})
    long = at.to_long(wide, client="id", columns=["pre", "mid", "post"], sessions=[1, 5, 9])
    assert long["session"].tolist() == [1, 5, 9]
    with pytest.raises(InvalidInputError, match=r"3 column name\(s\) carry no session number"):
        at.to_long(wide, client="id", columns=["pre", "mid", "post"])
    with pytest.raises(InvalidInputError, match="no column name ends in a session number"):
        at.to_long(wide, client="id")
    with pytest.raises(InvalidInputError, match="client id column not found"):
        at.to_long(wide, client="client", columns=["pre"], sessions=[1])
    wide2 = pd.DataFrame({"id": [1], "a1": [3.0], "b1": [4.0]})
    with pytest.raises(InvalidInputError, match="same session number"):
        at.to_long(wide2, client="id", columns=["a1", "b1"])
    with pytest.raises(InvalidInputError, match=r"several prefixes \('a', 'b'\)"):
        at.to_long(wide2, client="id")
    wide3 = pd.DataFrame({"id": [1], "s1": ["x"], "s2": [4.0]})
    with pytest.raises(InvalidInputError, match=r"1 non-numeric cell\(s\); e.g. 'x'"):
        at.to_long(wide3, client="id")


@pytest.mark.parametrize(
    "scale, low, high",
    [
        ("wai-sr", 12, 60),  # 12 items x 1..5
        ("wai-sr:mean", 1, 5),
        ("wai", 36, 252),  # 36 items x 1..7
        ("wai-s", 12, 84),
        ("srs", 0, 40),  # 4 items x 0..10
        ("haq-ii", 19, 114),  # 19 items x 1..6
        ("calpas", 1, 7),  # conventionally item means
        ("arm", 1, 7),
        ("ARM:total", 28, 196),
        ((0, 100), 0, 100),
    ],
)
def test_scale_ranges(scale, low, high):
    from alliance_ts.scales import resolve_scale

    rng, msg = resolve_scale(scale)
    assert msg is None and (rng.low, rng.high) == (low, high)


def test_scale_bounds_are_inclusive():
    df = pd.DataFrame({"client": 1, "session": [1, 2, 3], "score": [0.0, 40.0, 20.0]})
    at.detect(df, rule="vshape", scale="srs", pooled_sd=1.0)
    with pytest.raises(InvalidInputError, match="1 row with a score outside the scale srs:total"):
        at.detect(df.assign(score=[0.0, 40.5, 20.0]), scale="srs")


def test_list_scales_table():
    t = at.list_scales()
    assert t.columns.tolist() == [
        "id", "name", "items", "item_low", "item_high", "total_low", "total_high", "default", "reference", "notes"
    ]
    assert set(t["id"]) == {"wai", "wai-s", "wai-sr", "srs", "haq-ii", "calpas", "arm"}
