"""by_client, around and plot.average_episode on hand-worked examples."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.tables import CLIENT_COLUMNS, EPISODE_COLUMNS

# vshape with sd="pooled", pooled_sd=2: threshold k * SD = 2 * 2 = 4 points, return level
# pre - tol * 4 = pre - 2 (reference "previous": pre is the score at the top of the fall).
#
# A: 50 50 44 50 50 38 49 50  -> episode 1: 50 -> 44 at session 3 (fall 6 >= 4, pre 50, depth 6), back to
#                                50 >= 48 at 4; episode 2: 50 -> 38 at 6 (depth 12), back to 49 >= 48 at 7
# B: 50 50                    -> 2 observed scores < min_sessions 3: not analysed
# C: 50 51 50 51              -> no fall of 4: no episode
# D: 50 44 50 44 50           -> two equally deep episodes (depth 6): at 2 (end 3) and at 4 (end 5)
# E: 50 50 40 41              -> 50 -> 40 at 3 (depth 10), never back to 48: unresolved
ROWS = {"A": [50, 50, 44, 50, 50, 38, 49, 50], "B": [50, 50], "C": [50, 51, 50, 51], "D": [50, 44, 50, 44, 50],
        "E": [50, 50, 40, 41]}
SITE = {"A": "north", "B": "south", "C": "north", "D": "south", "E": "north"}
DATA = pd.DataFrame([(c, i + 1, s, SITE[c]) for c, v in ROWS.items() for i, s in enumerate(v)],
                    columns=["client", "session", "score", "site"])


@pytest.fixture(scope="module")
def res():
    return at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=2.0, keep=["site"])


def test_episodes_are_the_hand_worked_ones(res):
    e = res.episodes
    assert e[["client", "episode", "start", "trough", "status"]].values.tolist() == [
        ["A", 1, 3, 3, "repaired"], ["A", 2, 6, 6, "repaired"], ["D", 1, 2, 2, "repaired"],
        ["D", 2, 4, 4, "repaired"], ["E", 1, 3, 3, "unresolved"]]
    assert e["depth"].tolist() == [6.0, 12.0, 6.0, 6.0, 10.0]


def test_by_client_columns_and_dtypes(res):
    t = res.by_client()
    assert list(t.columns) == ["client", "site", *CLIENT_COLUMNS, *EPISODE_COLUMNS]
    assert t["client"].tolist() == ["A", "B", "C", "D", "E"]  # res.clients order, every client present
    assert t["site"].tolist() == ["north", "south", "north", "south", "north"]
    for col in ("episode", "start", "trough", "end", "n_ruptures"):
        assert t[col].dtype == "Int64"
    for col in ("status", "phase", "pattern"):
        assert isinstance(t[col].dtype, pd.CategoricalDtype)
    assert list(t["status"].cat.categories) == ["repaired", "unresolved"]
    assert t["included"].dtype == bool
    for col in ("pre", "trough_score", "post", "depth"):
        assert t[col].dtype == np.float64


def test_by_client_first(res):
    t = res.by_client("first").set_index("client")
    # A: episode 1 (start 3, trough 3 with 44, repaired at 4 with 50: post 50, depth 50 - 44 = 6)
    a = t.loc["A"]
    assert (a["episode"], a["start"], a["trough"], a["end"]) == (1, 3, 3, 4)
    assert (a["pre"], a["trough_score"], a["post"], a["depth"]) == (50.0, 44.0, 50.0, 6.0)
    assert (a["status"], a["phase"]) == ("repaired", "early")  # start 3 in span 1..8: 3 * 2 < 7 -> early
    assert (a["n_ruptures"], a["n_repaired"], a["n_unresolved"], a["pattern"]) == (2, 2, 0, "repaired")
    # B: excluded, with its reason; every episode field missing
    b = t.loc["B"]
    assert not b["included"] and b["reason"] == "fewer than 3 observed scores (2)"
    assert b["n_sessions"] == 2 and b[["n_ruptures", "episode", "start", "end"]].isna().all()
    assert pd.isna(b["pattern"]) and np.isnan(b["depth"]) and np.isnan(b["post"])
    # C: analysed, no episode
    c = t.loc["C"]
    assert c["included"] and c["pattern"] == "no_rupture" and c["n_ruptures"] == 0 and pd.isna(c["episode"])
    # E: unresolved: no end, so no post score; depth 50 - 40 = 10
    e = t.loc["E"]
    assert pd.isna(e["end"]) and np.isnan(e["post"]) and e["depth"] == 10.0 and e["status"] == "unresolved"


def test_by_client_largest(res):
    t = res.by_client("largest").set_index("client")
    # A: episode 2 is deeper (50 - 38 = 12 > 6); post is the score at its end session 7: 49, not pre (50)
    a = t.loc["A"]
    assert (a["episode"], a["start"], a["end"], a["trough_score"], a["post"], a["depth"]) == (2, 6, 7, 38.0, 49.0,
                                                                                              12.0)
    assert a["phase"] == "late"  # start 6 in span 1..8: 3 * 5 = 15 >= 2 * 7 -> late
    # D: both 6 deep -> the earliest
    assert (t.loc["D", "episode"], t.loc["D", "start"]) == (1, 2)
    assert t.loc["E", "episode"] == 1


def test_by_client_all(res):
    t = res.by_client("all")
    # A 2 episodes + B 1 row + C 1 row + D 2 episodes + E 1 episode = 7 rows
    assert len(t) == 7
    assert t["client"].tolist() == ["A", "A", "B", "C", "D", "D", "E"]
    assert t["episode"].tolist() == [1, 2, pd.NA, pd.NA, 1, 2, 1]
    assert t["post"].tolist()[:2] == [50.0, 49.0]
    assert t["site"].tolist() == ["north", "north", "south", "north", "south", "south", "north"]
    assert t.index.tolist() == list(range(7))
    # one row per client for the other choices
    assert len(res.by_client("first")) == len(res.by_client("largest")) == 5


def test_by_client_is_the_method(res):
    pd.testing.assert_frame_equal(res.by_client("largest"), at.tables.by_client(res, "largest"))


@pytest.mark.parametrize("which", ["last", "", None, 1])
def test_by_client_rejects_a_bad_which(res, which):
    with pytest.raises(InvalidInputError, match="parameter 'which': must be one of 'first', 'largest', 'all'") as info:
        res.by_client(which)
    assert isinstance(info.value, ValueError)


def test_by_client_psq_largest_is_the_strongest_report():
    # rater p: episode 1 opens at session 2 (rupture 4), episode 2 at 5 (rupture 5, resolved 5 within the
    # session); depth is missing for psq, so "largest" takes the highest intensity: episode 2 (5 > 4)
    df = pd.DataFrame({"client": 1, "session": [1, 2, 3, 4, 5] * 2, "who": ["p"] * 5 + ["t"] * 5,
                       "rupture": [1, 4, 3, 1, 5] + [1, 5, 3, 1, 4], "withdrawal": [1] * 10,
                       "resolved": [None, 2, 2, None, 5] * 2})
    res = at.detect(df, rule="psq", rater="who")
    t = res.by_client("largest")
    assert list(t.columns[:2]) == ["client", "rater"]
    # rater t: intensities 5 (episode 1) and 4 (episode 2) -> episode 1
    assert t[["rater", "episode", "start", "intensity"]].values.tolist() == [["p", 2, 5, 5.0], ["t", 1, 2, 5.0]]
    assert t["post"].isna().all() and t["depth"].isna().all()  # no scores: no post, no depth
    assert t["resolved_within"].dtype == "boolean"
    assert res.by_client("first")["episode"].tolist() == [1, 1]
    assert len(res.by_client("all")) == 4


def test_by_client_dates():
    df = pd.DataFrame({"client": ["a"] * 5, "when": pd.date_range("2024-01-01", periods=5, freq="7D"),
                       "score": [50, 50, 40, 50, 50]})
    res = at.detect(df, session="when", rule="vshape", sd="pooled", pooled_sd=2.0)
    t = res.by_client()
    assert list(t.columns[-3:]) == ["start_date", "trough_date", "end_date"]
    # dates numbered 1..5 by date order: the drop is at session 3 (2024-01-15), the repair at 4 (2024-01-22)
    assert t.loc[0, "start_date"] == pd.Timestamp("2024-01-15")
    assert t.loc[0, "end_date"] == pd.Timestamp("2024-01-22")
    # around keeps the dates of the sessions in the data (NaT beyond the course: session 6)
    a = res.around(before=1, after=3)
    assert a["session"].tolist() == [2, 3, 4, 5, 6]
    assert a["date"].tolist()[:4] == list(pd.date_range("2024-01-08", periods=4, freq="7D"))
    assert pd.isna(a["date"].iloc[4])


# --------------------------------------------------------------------------
# around

# F: 50 50 38 (missed: score NaN at 4) 50 -> episode at 3 (pre 50), back to 50 at 5
# G: sessions 1 2 3 5 (no row for 4): 50 50 38 50 -> episode at 3, back at 5
AROUND = pd.DataFrame({"client": ["F"] * 5 + ["G"] * 4, "session": [1, 2, 3, 4, 5, 1, 2, 3, 5],
                       "score": [50, 50, 38, np.nan, 50, 50, 50, 38, 50]})


@pytest.fixture(scope="module")
def gaps():
    return at.detect(AROUND, rule="vshape", sd="pooled", pooled_sd=2.0)


def test_around_missed_sessions_and_course_end(gaps):
    assert gaps.episodes[["client", "start", "end"]].values.tolist() == [["F", 3, 5], ["G", 3, 5]]
    t = gaps.around(before=3, after=3)
    assert list(t.columns) == ["client", "episode", "status", "phase", "offset", "session", "score", "observed"]
    assert len(t) == 2 * 7  # offsets -3..3 for each of the 2 episodes
    f = t[t["client"] == "F"]
    assert f["offset"].tolist() == [-3, -2, -1, 0, 1, 2, 3]
    assert f["session"].tolist() == [0, 1, 2, 3, 4, 5, 6]  # start 3 + offset
    # session 0: before the course; 4: missed (a row without a score); 6: after the course (it ends at 5)
    np.testing.assert_array_equal(f["score"].to_numpy(), [np.nan, 50, 50, 38, np.nan, 50, np.nan])
    assert f["observed"].tolist() == [False, True, True, True, False, True, False]
    g = t[t["client"] == "G"]
    # session 4 has no row at all: missing too
    np.testing.assert_array_equal(g["score"].to_numpy(), [np.nan, 50, 50, 38, np.nan, 50, np.nan])
    assert t["episode"].tolist() == [1] * 14 and (t["status"] == "repaired").all()
    assert t["offset"].dtype == t["session"].dtype == np.int64 and t["observed"].dtype == bool
    assert isinstance(t["status"].dtype, pd.CategoricalDtype)


def test_around_zero_width(gaps):
    t = at.tables.around(gaps, before=0, after=0)
    assert t[["client", "session", "score"]].values.tolist() == [["F", 3, 38.0], ["G", 3, 38.0]]


def test_around_no_episodes():
    res = at.detect([50, 51, 50, 51], rule="vshape", pooled_sd=1.0)
    t = res.around()
    assert t.empty and list(t.columns) == ["client", "episode", "status", "phase", "offset", "session", "score",
                                           "observed"]


@pytest.mark.parametrize("before, after, bad", [(-1, 3, "'before'"), (3, 1.5, "'after'"), (True, 3, "'before'"),
                                                ("3", 3, "'before'")])
def test_around_validates_before_and_after(gaps, before, after, bad):
    with pytest.raises(InvalidInputError, match=f"parameter {bad}") as info:
        gaps.around(before=before, after=after)
    assert isinstance(info.value, ValueError)


def test_around_lists_both_problems(gaps):
    with pytest.raises(InvalidInputError, match="2 problems") as info:
        gaps.around(before=-1, after=0.5)
    assert [p.where for p in info.value.problems] == ["parameter 'before'", "parameter 'after'"]


def test_around_accepts_whole_floats(gaps):
    assert len(gaps.around(before=1.0, after=2.0)) == 2 * 4


# --------------------------------------------------------------------------
# plot.average_episode

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _line(ax, prefix):
    (line,) = [ln for ln in ax.get_lines() if str(ln.get_label()).startswith(prefix)]
    return line


def test_average_episode_means_and_band(res, tmp_path):
    import matplotlib.pyplot as plt

    ax = at.plot.average_episode(res, before=1, after=1)
    # repaired episodes (offset -1, 0, 1 = sessions start-1, start, start+1):
    #   A1 (start 3): 50 44 50; A2 (start 6): 50 38 49; D1 (start 2): 50 44 50; D2 (start 4): 50 44 50
    # offset -1: 50; offset 0: (44 + 38 + 44 + 44) / 4 = 170 / 4 = 42.5; offset 1: (50 + 49 + 50 + 50) / 4 = 49.75
    rep = _line(ax, "repaired")
    assert rep.get_label() == "repaired (4 episodes)"
    assert list(rep.get_xdata()) == [-1, 0, 1]
    np.testing.assert_allclose(rep.get_ydata(), [50.0, 42.5, 49.75])
    # unresolved: E (start 3): 50 40 41
    unr = _line(ax, "unresolved")
    assert unr.get_label() == "unresolved (1 episode)"
    np.testing.assert_allclose(unr.get_ydata(), [50.0, 40.0, 41.0])
    assert rep.get_color() == at.plot.COLORS["repaired"] and unr.get_color() == at.plot.COLORS["unresolved"]
    # band at offset 0: deviations 1.5 -4.5 1.5 1.5 -> SS = 2.25 + 20.25 + 2.25 + 2.25 = 27, SD = sqrt(27 / 3) = 3,
    # half width = t(0.975, df 3) * 3 / sqrt(4) = 3.182446 * 1.5 = 4.773669
    band = ax.collections[0].get_paths()[0].vertices
    at0 = band[np.isclose(band[:, 0], 0.0), 1]
    np.testing.assert_allclose([at0.min(), at0.max()], [42.5 - 4.773669, 42.5 + 4.773669], atol=1e-5)
    # offset -1: every score 50, SD 0: a band of zero width
    at_m1 = band[np.isclose(band[:, 0], -1.0), 1]
    np.testing.assert_allclose(at_m1, 50.0)
    assert len(ax.collections) == 1  # no band for the single unresolved episode (n = 1)
    assert ax.get_title() == "Scores around episode starts (vshape)"
    assert ax.get_xlabel() == "sessions from the episode's start (0 = start)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["repaired (4 episodes)", "unresolved (1 episode)"]
    assert any(list(ln.get_xdata()) == [0, 0] for ln in ax.get_lines())  # offset 0 marked
    fig = ax.figure
    fig.tight_layout()
    out = tmp_path / "average.png"
    fig.savefig(out, dpi=80)
    assert out.stat().st_size > 1000
    plt.close(fig)


def test_average_episode_all_episodes_without_band(res):
    import matplotlib.pyplot as plt

    ax = at.plot.average_episode(res, before=0, after=0, by=None, ci=None)
    (line,) = [ln for ln in ax.get_lines() if str(ln.get_label()).startswith("all")]
    # offset 0 over all 5 episodes: (44 + 38 + 44 + 44 + 40) / 5 = 210 / 5 = 42
    assert line.get_label() == "all (5 episodes)"
    np.testing.assert_allclose(line.get_ydata(), [42.0])
    assert not ax.collections
    plt.close(ax.figure)


def test_average_episode_on_given_axes(res):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    assert at.plot.average_episode(res, ax=right, by="phase") is right
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["early (2 episodes)", "late (3 episodes)"]
    assert not left.get_lines()
    plt.close(fig)


def test_average_episode_errors(res):
    import matplotlib.pyplot as plt

    none = at.detect([50, 51, 50, 51], rule="vshape", pooled_sd=1.0)
    with pytest.raises(InvalidInputError, match="no episodes"):
        at.plot.average_episode(none)
    psq = at.detect(pd.DataFrame({"client": 1, "session": [1, 2, 3], "rupture": [1, 4, 1],
                                  "withdrawal": [1, 1, 1], "resolved": [None, 2, None]}), rule="psq")
    with pytest.raises(InvalidInputError, match="reads questionnaire answers, not scores"):
        at.plot.average_episode(psq)
    with pytest.raises(InvalidInputError, match="parameter 'by'"):
        at.plot.average_episode(res, by="client")
    with pytest.raises(InvalidInputError, match="parameter 'ci'"):
        at.plot.average_episode(res, ci=1.0)
    with pytest.raises(InvalidInputError, match="parameter 'after'"):
        at.plot.average_episode(res, after=-2)
    with pytest.raises(InvalidInputError, match="expected a Detection"):
        at.plot.average_episode(DATA)
    plt.close("all")
