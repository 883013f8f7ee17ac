"""The one pipeline: every path gives bit-identical tables (Hypothesis), and its pieces.

For every registered rule, all three tables must be *exactly* equal (values,
dtypes, order) whether the rows are shuffled, the clients renamed (int ids to
zero-padded text and back, in reversed order), the clients labelled in tiny
blocks, streamed in pieces of 1 to 50 rows, or labelled by Dask in 1 or 3
partitions. A sample budget of 40 scores makes the sample for the sample-wide
parameters a real subsample in most examples, so the data-chosen sample is
checked in every path too.
"""

from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_ts as at
import alliance_ts.panel
import alliance_ts.pipeline
import alliance_ts.sample
import alliance_ts.validation
from alliance_ts.distributed import detect_dask
from alliance_ts.pipeline import ChunkSource, DetectionSink, plan, run, whole_clients
from alliance_ts.sample import Sampler, choose, content_hashes, copy_numbers, sample_keys, selected, thin
from alliance_ts.testing.strategies import panels

dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402

RULES = [
    ("recommended", {}),
    ("robust", dict(noise="max", window=1, dip=False)),
    ("vshape", {}),
    ("stiles2004", {}),
    ("strauss2006", {}),
    ("gumz2012", {}),
    ("sudden_loss", dict(reliability=0.8)),
    ("sudden_loss", dict(cutoff=2.0, pct=None)),
    ("changepoint", dict(penalty="calibrated")),
    ("scan", {}),
    ("scan", dict(fdr=0.2)),
    ("psq", dict(rater="rater")),
]


def budget(n):
    """A sample budget of ``n`` scores for the duration of a with-block."""
    return patch.object(alliance_ts.sample, "SAMPLE_SCORES", n)


def block_cells(n):
    """Blocks of at most ``n`` cells (one client per block for small n)."""
    return patch.object(alliance_ts.panel, "BLOCK_CELLS", n)


@st.composite
def answer_panels(draw):
    """PSQ answers: clients x raters x sessions, items 1-5 or unanswered, rows shuffled."""
    rows = []
    for client in range(draw(st.integers(1, 5))):
        for rater in draw(st.sets(st.sampled_from(["patient", "therapist"]), min_size=1)):
            sessions = draw(st.lists(st.integers(1, 25), min_size=1, max_size=12, unique=True))
            for s in sessions:
                item = st.one_of(st.none(), st.integers(1, 5))
                rows.append({"client": client, "rater": rater, "session": s, "rupture": draw(item),
                             "withdrawal": draw(item), "resolved": draw(item)})
    df = pd.DataFrame(rows)
    for col in ("rupture", "withdrawal", "resolved"):
        df[col] = df[col].astype(float)
    return df.sample(frac=1.0, random_state=draw(st.integers(0, 1000))).reset_index(drop=True)


def assert_identical(a, b, what):
    for name in ("episodes", "sessions", "clients"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=f"{what}: {name}")
    assert a.params == b.params or _nan_equal(a.params, b.params), what


def _nan_equal(p, q):
    return p.keys() == q.keys() and all(
        (x != x and y != y) or x == y or (isinstance(x, tuple) and all((u != u and v != v) or u == v for u, v in zip(x, y)))
        for x, y in ((p[k], q[k]) for k in p)
    )


def renamed(df):
    """Int ids -> zero-padded text in reversed order (text ids -> ints), and the way back."""
    ids = sorted(df["client"].unique(), key=str)
    if df["client"].dtype.kind in "iu":
        forward = {c: f"{len(ids) - i:04d}" for i, c in enumerate(ids)}
    else:
        forward = {c: len(ids) - i for i, c in enumerate(ids)}
    return df.assign(client=df["client"].map(forward)), {v: k for k, v in forward.items()}


def mapped_back(res, back, dtype):
    """The tables of a renamed run with the original ids, in the original order."""
    out = {}
    for name in ("episodes", "sessions", "clients"):
        t = getattr(res, name)
        t = t.assign(client=pd.Series(t["client"].map(back).to_numpy(), index=t.index).astype(dtype))
        keys = ["client"] + (["rater"] if "rater" in t.columns else [])
        keys += {"episodes": ["episode"], "sessions": ["session"], "clients": []}[name]
        out[name] = t.sort_values(keys, kind="stable").reset_index(drop=True)
    return at.Detection(out["episodes"], out["sessions"], out["clients"], res.rule, res.params, res.version)


def streamed(df, rule, params, chunk_rows):
    """The streaming path (pieces of ``chunk_rows`` rows, regrouped into whole clients), in memory."""
    job, problems, _ = plan(rule, params, client="client", session="session", score="score", scale=None,
                            min_sessions=3)
    assert not problems
    ordered = df.sort_values(["client"], kind="stable").reset_index(drop=True)

    def pieces():
        return whole_clients((ordered.iloc[i:i + chunk_rows] for i in range(0, len(ordered), chunk_rows)), "client")

    sink = DetectionSink("rater" if "rater" in params else None)
    run(ChunkSource(pieces), job, sink)
    return ordered, sink.result()


@pytest.mark.parametrize("rule, params", RULES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(RULES)])
@settings(max_examples=25)
@given(data=st.data(), chunk_rows=st.integers(1, 50))
def test_every_path_gives_identical_tables(rule, params, data, chunk_rows):
    df = data.draw(answer_panels() if rule == "psq" else panels(max_clients=8, missing=True))
    with budget(40):
        try:
            base = at.detect(df, rule, **params)
        except at.InvalidInputError as err:
            if "check_codes=False" in str(err):
                # a value that looks like a missing-data code: streaming finds exactly the same
                ordered = df.sort_values(["client"], kind="stable").reset_index(drop=True)
                with pytest.raises(at.InvalidInputError) as whole:
                    at.detect(ordered, rule, **params)
                with pytest.raises(at.InvalidInputError) as pieces:
                    streamed(df, rule, params, chunk_rows)
                assert pieces.value.problems == whole.value.problems
                return
            # e.g. sudden_loss cannot estimate its SD: every path says so
            assert "parameter 'sd'" in str(err)
            with pytest.raises(at.InvalidInputError, match="parameter 'sd'"):
                streamed(df, rule, params, chunk_rows)
            return
        seed = data.draw(st.integers(0, 2**31 - 1))
        assert_identical(base, at.detect(df.sample(frac=1.0, random_state=seed), rule, **params), "shuffled rows")
        other, back = renamed(df)
        assert_identical(base, mapped_back(at.detect(other, rule, **params), back, df["client"].dtype),
                         "renamed clients")
        with block_cells(3):
            assert_identical(base, at.detect(df, rule, **params), "blocks of one client")
        ordered, got = streamed(df, rule, params, chunk_rows)
        assert_identical(at.detect(ordered, rule, **params), got, f"streamed in pieces of {chunk_rows} rows")
        # the synchronous scheduler: the same partition functions as on a cluster, without
        # processes (test_distributed runs a LocalCluster); text ids keep pandas' dtype
        with dask.config.set({"scheduler": "synchronous", "dataframe.convert-string": False}):
            for n in (1, 3):
                ddf = dd.from_pandas(df, npartitions=min(n, len(df)), sort=False)
                got = detect_dask(ddf, rule, npartitions=n, **params)
                assert_identical(base, got, f"Dask, {n} partition(s)")


# --------------------------------------------------------------------------
# the sample


def test_the_sample_does_not_depend_on_how_ids_are_spelled():
    # 300 clients, a budget of 1,200 scores: one in 4 clients (by their data) is in
    # the sample; writing ids 7 as "007", or reversing their order, changes nothing
    sim = at.simulate(300, rng=8, p_missing=0.1, missing="nan")
    df = sim.scores
    text = df.assign(client=df["client"].map(lambda c: f"{c:03d}"))
    backwards = df.assign(client=-df["client"])
    with budget(1200):
        assert alliance_ts.sample.sample_step(int(df["score"].notna().sum())) == 4
        for rule in ("recommended", "vshape", "changepoint"):
            a = at.detect(df, rule, penalty="calibrated") if rule == "changepoint" else at.detect(df, rule)
            for other in (text, backwards):
                kw = {"penalty": "calibrated"} if rule == "changepoint" else {}
                b = at.detect(other, rule, **kw)
                assert a.params == b.params, rule
                assert len(a.episodes) == len(b.episodes)
                assert (a.clients["n_ruptures"].sum(), a.clients["pattern"].value_counts().to_dict()) == (
                    b.clients["n_ruptures"].sum(), b.clients["pattern"].value_counts().to_dict())
    full = at.detect(df, "vshape")
    with budget(1200):
        assert full.params["pooled_sd"] != at.detect(df, "vshape").params["pooled_sd"]  # really a subsample


def test_identical_courses_are_sampled_one_in_step():
    # 64 clients with the very same course: the copy numbers 0..63 mixed into the keys
    # choose about a quarter of them at step 4 (not all or none, as a hash of the data alone would)
    df = pd.DataFrame({"client": np.repeat(np.arange(64), 5), "session": np.tile(np.arange(1, 6), 64),
                       "score": np.tile([40.0, 40, 39, 40, 40], 64)})
    panel = alliance_ts.validation.read_panel(df, client="client", session="session", score="score")[0]
    h = content_hashes(panel, np.arange(64))
    assert len(set(h.tolist())) == 1
    copies = copy_numbers(h)
    assert sorted(copies.tolist()) == list(range(64))
    chosen = selected(sample_keys(h, copies), 4).sum()
    assert 8 <= chosen <= 24  # binomial(64, 1/4): mean 16, SD 3.5
    # a different session gap or score makes a different course
    df2 = df.assign(session=np.where(df["session"] == 5, 6, df["session"]))
    p2 = alliance_ts.validation.read_panel(df2, client="client", session="session", score="score")[0]
    assert content_hashes(p2, np.array([0]))[0] != h[0]


def test_streaming_sampler_equals_choosing_from_the_whole_input():
    sim = at.simulate(200, rng=4)
    panel = alliance_ts.validation.read_panel(sim.scores, client="client", session="session", score="score")[0]
    units = np.arange(panel.n_clients)
    whole = choose(panel, units, budget=300)
    sampler = Sampler(budget=300)
    for part in np.array_split(units, 13):  # 13 chunks, each its own panel
        sub = panel.subset(part)
        sampler.add(sub, np.arange(sub.n_clients))
    got, _ = sampler.sample()
    assert sampler.step_kept > 1  # candidates were thinned on the way
    want = panel.subset(whole)
    # the same courses (order aside)
    key = lambda p: sorted(map(tuple, np.split(p.obs_values, p.obs_offsets[1:-1])))
    assert key(got) == key(want)


def test_thin_orders_by_key_not_by_id():
    sim = at.simulate(50, rng=2)
    panel = alliance_ts.validation.read_panel(sim.scores, client="client", session="session", score="score")[0]
    a = thin(panel, np.arange(50), 20)
    renamed_panel = alliance_ts.validation.read_panel(sim.scores.assign(client=-sim.scores["client"]),
                                                      client="client", session="session", score="score")[0]
    b = thin(renamed_panel, np.arange(50), 20)
    # the same courses in the same order, although the codes differ (ids reversed)
    assert [panel.client_ids[c] for c in a] == [-renamed_panel.client_ids[c] for c in b]


def test_no_sample_is_drawn_for_rules_that_estimate_nothing(monkeypatch):
    # stiles2004 uses each client's own SD and sudden_loss with a cut-off estimates no SD:
    # with a tiny budget, hashing every client would be wasted work (and is not done)
    def no_sample(*a, **k):
        raise AssertionError("a sample was drawn")

    monkeypatch.setattr(alliance_ts.pipeline, "choose", no_sample)
    sim = at.simulate(50, rng=3)
    with budget(40):
        at.detect(sim.scores, "stiles2004")
        at.detect(sim.scores, "sudden_loss", cutoff=5.0)
        at.detect(sim.scores, "vshape", pooled_sd=2.0)
        with pytest.raises(AssertionError, match="a sample was drawn"):
            at.detect(sim.scores, "gumz2012")  # its pooled SD is estimated from the sample
    assert at.rules.get_rule("changepoint").cls(noise=1.0).needs_sample() is False
    assert at.rules.get_rule("changepoint").cls(noise=1.0, penalty="calibrated").needs_sample() is True
