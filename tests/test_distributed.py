"""The Dask engine on a distributed.LocalCluster gives the pandas result exactly."""

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import alliance_ts as at  # noqa: E402
import alliance_ts.panel  # noqa: E402
import alliance_ts.sample  # noqa: E402
from alliance_ts.distributed import input_files, read_dask  # noqa: E402
from alliance_ts.errors import InvalidInputError  # noqa: E402

KW = dict(client="pid", session="week", score="wai", scale="wai-sr")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as lc, distributed.Client(lc) as client:
        yield client


@pytest.fixture(scope="module")
def trial():
    sim = at.simulate(400, rng=21, p_missing=0.1, missing="nan")
    df = sim.scores.rename(columns={"client": "pid", "session": "week", "score": "wai"})
    df["pid"] = "T" + df["pid"].astype(str).str.zfill(4)  # string ids
    # two clients too short to analyse (kept in the output with a reason)
    short = pd.DataFrame({"pid": ["S1", "S1", "S2"], "week": [1, 2, 1], "wai": [50.0, 49.0, np.nan]})
    df = pd.concat([df, short], ignore_index=True)
    return df.sample(frac=1.0, random_state=4).reset_index(drop=True)  # unsorted rows


def assert_same(a, b):
    for name in ("episodes", "sessions", "clients"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert a.params == b.params and a.rule == b.rule


@pytest.mark.parametrize("rule, params", [
    ("recommended", {}),
    ("gumz2012", {}),
    ("stiles2004", {}),
    ("robust", {"alpha": 0.1}),
    ("changepoint", {"penalty": "calibrated"}),
    ("sudden_loss", {"reliability": 0.9}),
    ("scan", {}),
])
def test_dask_equals_pandas(cluster, trial, rule, params):
    ddf = dd.from_pandas(trial, npartitions=5)
    want = at.detect(ddf.compute(), rule, **KW, **params)  # the same data in memory
    got = at.detect(ddf, rule, **KW, **params)
    assert_same(got, want)
    assert got.clients.loc[~got.clients["included"], "client"].tolist() == ["S1", "S2"]  # reported, not dropped


def test_pandas_input_with_the_dask_engine(cluster, trial):
    assert_same(at.detect(trial, engine="dask", **KW), at.detect(trial, **KW))


def test_result_does_not_depend_on_partitions(cluster, trial):
    one = at.detect(dd.from_pandas(trial, npartitions=1), "changepoint", **KW)
    many = at.detect(dd.from_pandas(trial, npartitions=9), "changepoint", **KW)
    assert_same(one, many)


def test_hash_sample_is_the_same_as_in_memory(cluster, trial, monkeypatch):
    # a budget of 1,500 scores: the 400 clients' ~6,000 analysed scores give a step
    # of 4, so the sample-wide estimates use about a quarter of the clients
    monkeypatch.setattr(alliance_ts.sample, "SAMPLE_SCORES", 1500)
    n_scores = int(trial["wai"].notna().sum())
    assert alliance_ts.sample.sample_step(n_scores) == 4
    for rule in ("recommended", "vshape"):
        want = at.detect(trial, rule, engine="pandas", **KW)
        got = at.detect(trial, rule, engine="dask", **KW)
        assert_same(got, want)
    full = at.detect(trial, "vshape", **KW)
    monkeypatch.undo()
    # the subsample really changed the estimate (the test would not be able to fail otherwise)
    assert full.params["pooled_sd"] != at.detect(trial, "vshape", **KW).params["pooled_sd"]


def test_every_problem_is_reported_once(cluster, trial):
    bad = trial.copy()
    bad.loc[bad.index[:3], "wai"] = 500.0  # above the WAI-SR range in three rows
    dup = bad[bad["pid"] == "T0300"].iloc[[0]]
    bad = pd.concat([bad, dup], ignore_index=True)  # one repeated session
    with pytest.raises(InvalidInputError) as mem:
        at.detect(bad, **KW)
    with pytest.raises(InvalidInputError) as dist:
        at.detect(dd.from_pandas(bad, npartitions=4), **KW)
    # the same problems, counts and example rows (the first rows of the table)
    key = lambda p: (p.where, p.message, p.examples)
    assert sorted(dist.value.problems, key=key) == sorted(mem.value.problems, key=key)
    assert sorted(p.message.split(" ", 2)[0] for p in mem.value.problems) == ["2", "3"]


def test_missing_ids_and_columns(cluster, trial):
    bad = trial.copy()
    bad.loc[bad.index[[5, 9]], "pid"] = None
    with pytest.raises(InvalidInputError, match="client"):
        at.detect(dd.from_pandas(bad, npartitions=3), **KW)
    with pytest.raises(InvalidInputError, match="required column"):
        at.detect(dd.from_pandas(trial.drop(columns="wai"), npartitions=3), **KW)


def test_a_folder_of_parquet_files(cluster, trial, tmp_path):
    folder = tmp_path / "trial"
    folder.mkdir()
    for k, part in enumerate((trial.iloc[:2000], trial.iloc[2000:4000], trial.iloc[4000:])):
        part.to_parquet(folder / f"part-{k}.parquet", index=False)
    assert [p.name for p in input_files(folder)] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    ddf = read_dask(folder, format="parquet")
    assert ddf.npartitions == 3
    assert_same(at.detect(ddf, **KW), at.detect(ddf.compute(), **KW))
    with pytest.raises(InvalidInputError, match="no file matches"):
        input_files(tmp_path / "none" / "*.parquet")


def test_rows_of_files_are_numbered_over_the_whole_table(cluster, trial, tmp_path):
    # each Parquet file's rows are numbered from 0 within the file by Dask; problems name
    # the row's position in the whole table instead: 2000 + 500 = 2500
    bad = trial.copy()
    bad.loc[2500, "wai"] = 99.0  # above the WAI-SR range (12-60)
    folder = tmp_path / "trial"
    folder.mkdir()
    for k, part in enumerate((bad.iloc[:2000], bad.iloc[2000:4000], bad.iloc[4000:])):
        part.to_parquet(folder / f"part-{k}.parquet", index=False)
    with pytest.raises(InvalidInputError) as info:
        at.detect(read_dask(folder, format="parquet"), **KW)
    (problem,) = info.value.problems
    pid, week = bad.loc[2500, "pid"], bad.loc[2500, "week"]
    assert problem.message == ("1 row with a score outside the scale wai-sr:total [12, 60] (missing-data codes? "
                               "declare them with missing=[99]; on the command line --missing=99)")
    assert problem.examples == (f"row 2500 (client '{pid}', session {week}, value 99)",)


def test_observer_codes_on_dask_equal_pandas(cluster):
    # segment rows of two coders, shuffled: the partitions hold pieces of sessions until the
    # Dask source regroups whole clients, then the same segment validation runs on each
    sim = at.simulate(60, rng=3, observer=True)
    codes = sim.observer.sample(frac=1.0, random_state=2).reset_index(drop=True)
    kw = dict(coder="coder", resolution="resolution", resolved="resolved")
    ddf = dd.from_pandas(codes, npartitions=4)
    want = at.detect(ddf.compute(), "observer_significant", **kw)  # the same data in memory (Dask's text dtype)
    got = at.detect(ddf, "observer_significant", **kw)
    assert_same(got, want)
    assert len(want.episodes) > 20 and set(want.clients["coder"]) == {"A", "B"}
