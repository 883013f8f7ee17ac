"""Plots (Agg backend) and the df.alliance accessor."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import alliance_ts as at  # noqa: E402
from alliance_ts.errors import InvalidInputError  # noqa: E402
from alliance_ts.plot import COLORS  # noqa: E402

# client 1: a V at session 4 (repaired at 5); client 2: a missed session 3 and a drop at 5 that
# never recovers; client 3: flat
DATA = pd.DataFrame({
    "client": [1] * 7 + [2] * 6 + [3] * 5,
    "session": [1, 2, 3, 4, 5, 6, 7] + [1, 2, 3, 4, 5, 6] + [1, 2, 3, 4, 5],
    "score": [50, 51, 50, 38, 50, 51, 50] + [50, 51, np.nan, 50, 38, 38] + [50, 51, 50, 51, 50],
})


@pytest.fixture(scope="module")
def res():
    return at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=1.0)


def spans(ax):
    # axvspan draws a Rectangle in matplotlib >= 3.9 (a Polygon before)
    return [p for p in ax.patches if p.get_alpha() == 0.15]


def test_trajectory_draws_scores_episodes_and_troughs(res):
    # with a pooled SD of 1, a fall of 2 points or more opens an episode: 50 -> 38 at session 4
    # (client 1, back to 50 at 5) and at session 5 (client 2, never back)
    e = res.episodes
    assert e[["client", "start", "trough", "status"]].values.tolist() == [[1, 4, 4, "repaired"], [2, 5, 5, "unresolved"]]
    assert e["end"].tolist() == [5, pd.NA]
    ax = at.plot.trajectory(res, 2)
    line = ax.get_lines()[-1]
    assert line.get_xdata().tolist() == [1, 2, 3, 4, 5, 6]
    y = line.get_ydata()
    assert np.isnan(y[2]) and y[4] == 38  # the missed session leaves a gap
    (span,) = spans(ax)
    assert to_hex(span.get_facecolor()) == COLORS["unresolved"].lower()
    x0 = span.get_x() if hasattr(span, "get_x") else span.get_xy()[0][0]
    assert x0 == pytest.approx(5 - 0.4)
    assert ax.get_title() == "client 2 (vshape): unresolved"
    assert [t.get_text() for t in ax.texts] == ["1 unresolved"]
    troughs = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in troughs] == [(5, 38.0)]
    # the dotted line joins the attended sessions across the missed one: 1, 2, 4, 5, 6
    (dotted,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert dotted.get_xdata().tolist() == [1, 2, 4, 5, 6]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["score", "across a missed session", "pre-rupture level", "trough"]


def test_labels_of_neighbouring_episodes_do_not_overlap():
    # two Vs, at sessions 4 and 7 (each back at the next session): label centres 4.5 and 7.5, three
    # sessions apart; each label "k repaired" is 10 characters
    data = pd.DataFrame({"client": 1, "session": range(1, 10), "score": [50, 50, 50, 38, 50, 50, 38, 50, 50]})
    res = at.detect(data, rule="vshape", pooled_sd=1.0)
    assert res.episodes[["start", "end"]].values.tolist() == [[4, 5], [7, 8]]

    def label_heights(width):
        fig, ax = plt.subplots(figsize=(width, 3))
        at.plot.trajectory(res, 1, ax=ax)
        return [t.xy[1] for t in ax.texts]

    # estimate: the x axis shows 8 + 1.8 sessions over 0.775 x width inches (matplotlib's default
    # margins), a character is 8 pt x 0.6 = 4.8/72 inch wide, so a label is
    # 10 x 9.8 x (4.8 / 72) / (0.775 x width) sessions wide: 8.43 / width
    # width 7 in: 1.2 sessions < 3 apart, one row; width 2.5 in: 3.37 > 3, the second label drops a row
    assert label_heights(7) == [0.98, 0.98]
    assert label_heights(2.5) == pytest.approx([0.98, 0.89])


def test_absent_session_numbers_break_the_line():
    # session 3 is not in the data at all (not a row with a missing score): the solid line is cut
    # between 2 and 4 by an inserted NaN, the dotted line joins them
    data = pd.DataFrame({"client": ["a"] * 5, "session": [5, 1, 2, 4, 6], "score": [50, 50, 51, 50, 51]})
    res = at.detect(data, rule="vshape", pooled_sd=1.0)
    ax = at.plot.trajectory(res, "a")
    solid = ax.get_lines()[-1]
    x, y = solid.get_xdata(), solid.get_ydata()
    assert np.isnan(x[2]) and np.isnan(y[2])
    assert x[[0, 1, 3, 4, 5]].tolist() == [1, 2, 4, 5, 6] and y[[0, 1, 3, 4, 5]].tolist() == [50, 51, 50, 50, 51]
    (dotted,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert dotted.get_xdata().tolist() == [1, 2, 4, 5, 6]
    assert ax.get_legend().get_texts()[1].get_text() == "across a missed session"
    # nothing missed, no episode: no dotted line and no legend
    flat = at.detect(pd.DataFrame({"client": 1, "session": [1, 2, 3], "score": [50, 51, 50]}), rule="vshape",
                     pooled_sd=1.0)
    ax = at.plot.trajectory(flat, 1)
    assert [ln.get_linestyle() for ln in ax.get_lines()] == ["-"] and ax.get_legend() is None


def test_trajectory_on_given_axes_and_saved(res):
    fig, ax = plt.subplots()
    assert at.plot.trajectory(res, 1, ax=ax) is ax
    (span,) = spans(ax)
    assert to_hex(span.get_facecolor()) == COLORS["repaired"].lower()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_panel_takes_patterns_in_turn(res):
    axes = at.plot.panel(res, n=3, ncols=2)
    assert axes.shape == (2, 2)
    titles = [ax.get_title() for ax in axes.flat[:3]]
    assert titles == ["client 1 (vshape): repaired", "client 2 (vshape): unresolved", "client 3 (vshape): no_rupture"]
    assert not axes.flat[3].axison
    chosen = at.plot.panel(res, [3, 1], ncols=1)
    assert [ax.get_title()[:8] for ax in chosen.flat] == ["client 3", "client 1"]


def test_overview_counts(res):
    axes = at.plot.overview(res)
    heights = [p.get_height() for p in axes[0].patches]
    # 3 analysed clients: no_rupture 1, repaired 1, unresolved 1, mixed 0
    assert heights == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    # onset phase: client 1 starts at 4 of 1..7 (pos 3, span 6: 9 >= 6 and 9 < 12 -> middle);
    # client 2 at 5 of 1..6 (pos 4, span 5: 12 >= 10 -> late)
    bars = axes[2].patches
    repaired, unresolved = [b.get_height() for b in bars[:3]], [b.get_height() for b in bars[3:]]
    assert repaired == [0, 1, 0] and unresolved == [0, 0, 1]


def test_psq_results_need_a_rater():
    sim = at.simulate(20, rng=1, psq=True)
    res = at.detect(sim.psq, rule="psq", rater="rater")
    with pytest.raises(InvalidInputError, match="several raters"):
        at.plot.trajectory(res, 1)
    ax = at.plot.trajectory(res, 1, rater="therapist")
    assert ax.get_title().endswith(", therapist")
    assert ax.get_ylabel() == "reported rupture (answer code)"
    # a self-reported episode's marked session is its most intense report, not a trough
    client = res.episodes.loc[res.episodes["rater"] == "patient", "client"].iloc[0]
    ax = at.plot.trajectory(res, client, rater="patient")
    assert "most intense report" in [t.get_text() for t in ax.get_legend().get_texts()]
    at.plot.overview(res.for_rater("patient"))


def test_unknown_client_and_wrong_input(res):
    with pytest.raises(InvalidInputError, match="no clients to show"):
        at.plot.panel(res, [])
    with pytest.raises(InvalidInputError, match="no client 99"):
        at.plot.trajectory(res, 99)
    with pytest.raises(InvalidInputError, match="expected a Detection"):
        at.plot.overview(DATA)


def test_accessor(res):
    got = DATA.alliance.detect(rule="vshape", sd="pooled", pooled_sd=1.0)
    pd.testing.assert_frame_equal(got.episodes, res.episodes)
    assert DATA.alliance.check() == []
    bad = DATA.assign(score=DATA["score"].astype(object))
    bad.loc[0, "score"] = "n/a"
    assert [p.where for p in bad.alliance.check()] == ["column 'score'"]
    ax = DATA.alliance.plot(1, rule="vshape", sd="pooled", pooled_sd=1.0)
    assert ax.get_title() == "client 1 (vshape): repaired"
    assert len(DATA.alliance.overview(rule="vshape", pooled_sd=1.0)) == 3


def test_plot_command(tmp_path):
    DATA.to_csv(tmp_path / "d.csv", index=False)
    script = Path(sys.executable).parent / "alliance-ts"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "alliance_ts"]
    done = subprocess.run(command + ["plot", "d.csv", "--out", "figs", "--rule", "vshape", "--param", "pooled_sd=1", "--param", "sd=pooled",
                                     "--clients", "1", "2"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "client_1.png", "client_2.png", "clients.png", "manifest.json", "overview.png"]
    done = subprocess.run(command + ["plot", "d.csv", "--out", "figs", "--clients", "7"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, "alliance-ts: error: --clients: no client '7' in the file\n")


def test_plot_command_when_no_client_can_be_analysed(tmp_path):
    # one client with 2 sessions (< min_sessions = 3): the overview is drawn, the panel cannot be
    pd.DataFrame({"client": [1, 1], "session": [1, 2], "score": [50, 40]}).to_csv(tmp_path / "d.csv", index=False)
    script = Path(sys.executable).parent / "alliance-ts"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "alliance_ts"]
    done = subprocess.run(command + ["plot", "d.csv", "--out", "figs"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("no client could be analysed, so clients.png is not drawn: "
                                           "1 x fewer than 3 observed scores (2)")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["manifest.json", "overview.png"]
