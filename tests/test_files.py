"""Readers and writers (every format round-trips), streaming = in memory."""

import json

import numpy as np
import pandas as pd
import pyreadstat
import pytest

import alliance_ts as at
import alliance_ts.panel
import alliance_ts.sample
from alliance_ts.errors import InvalidInputError
from alliance_ts.files import detect_file
from alliance_ts.io import file_sha256, iter_chunks, read_table, write_table


@pytest.fixture(scope="module")
def trial():
    sim = at.simulate(300, rng=11, p_missing=0.1, missing="nan")
    df = sim.scores.rename(columns={"client": "pid", "session": "week", "score": "wai"})
    df["pid"] = "P" + df["pid"].astype(str).str.zfill(4)  # string ids
    return df


def labels(out, fmt):
    """The three tables written, with the input's own column names (pid, week, wai) made generic again."""
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    generic = {"pid": "client", "week": "session", "wai": "score"}
    return {name: read(out / f"{name}.{fmt}").rename(columns=generic) for name in ("episodes", "sessions", "clients")}


def same_tables(a, b):
    for name in ("episodes", "sessions", "clients"):
        keys = {"episodes": ["client", "episode"], "sessions": ["client", "session"], "clients": ["client"]}[name]
        x = a[name].sort_values(keys).reset_index(drop=True)
        y = b[name].sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y, check_dtype=False)


@pytest.mark.parametrize("suffix, writer", [
    (".csv", lambda df, p: df.to_csv(p, index=False)),
    (".tsv", lambda df, p: df.to_csv(p, index=False, sep="\t")),
    (".txt", lambda df, p: df.to_csv(p, index=False, sep=";")),
    (".parquet", lambda df, p: df.to_parquet(p, index=False)),
    (".xlsx", lambda df, p: df.to_excel(p, index=False)),
    (".sav", lambda df, p: pyreadstat.write_sav(df, str(p))),
    (".dta", lambda df, p: pyreadstat.write_dta(df, str(p))),
])
def test_every_format_round_trips(tmp_path, trial, suffix, writer):
    path = tmp_path / f"trial{suffix}"
    writer(trial, path)
    back, meta = read_table(path)
    assert back.columns.tolist() == ["pid", "week", "wai"]
    assert back["pid"].tolist() == trial["pid"].tolist()
    assert np.allclose(back["week"], trial["week"])
    assert np.allclose(back["wai"], trial["wai"], equal_nan=True)
    # labelling the file gives the same result as labelling the table
    manifest = detect_file(path, tmp_path / "out", client="pid", session="week", score="wai", scale="wai-sr")
    direct = at.detect(trial, client="pid", session="week", score="wai", scale="wai-sr")
    got = labels(tmp_path / "out", "csv")
    assert len(got["episodes"]) == len(direct.episodes) == manifest["counts"]["episodes"]
    assert got["episodes"]["start"].tolist() == direct.episodes["start"].tolist()
    assert manifest["input"]["sha256"] == file_sha256(path)


def test_spss_value_labels_and_user_missing_codes(tmp_path):
    df = pd.DataFrame({"id": [1.0] * 5 + [2.0] * 5, "session": list(range(1, 6)) * 2,
                       "wai": [50.0, 51, 99, 38, 50, 40, 41, 42, 98, 40]})
    path = tmp_path / "t.sav"
    # 98 and 99 are declared missing ("refused", "not asked") with value labels
    pyreadstat.write_sav(df, str(path), missing_ranges={"wai": [98, 99]},
                         variable_value_labels={"wai": {98.0: "refused", 99.0: "not asked"}})
    back, meta = read_table(path)
    assert back["wai"].isna().tolist() == [False, False, True, False, False, False, False, False, True, False]
    assert meta["value_labels"]["wai"] == {"98.0": "refused", "99.0": "not asked"}
    manifest = detect_file(path, tmp_path / "out", client="id", score="wai", scale="wai-sr", rule="vshape", params={"pooled_sd": 1.0})
    assert manifest["input"]["value_labels"]["wai"]["99.0"] == "not asked"
    assert manifest["counts"]["rows"] == 10  # the missing codes stay as missed sessions


def test_write_table_is_atomic(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old\n")

    class Boom(pd.DataFrame):
        def to_csv(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_table(Boom({"a": [1]}), target, "csv")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("rule, params", [("recommended", {}), ("gumz2012", {}), ("changepoint", {"penalty": "calibrated"}),
                                          ("sudden_loss", {"reliability": 0.9}), ("scan", {"fdr": 0.2})])
def test_streaming_equals_in_memory(tmp_path, trial, fmt, rule, params, monkeypatch):
    # a small sample budget forces the hash-selected sample for the pooled estimates
    monkeypatch.setattr(alliance_ts.sample, "SAMPLE_SCORES", 1000)
    assert alliance_ts.sample.sample_step(int(trial["wai"].notna().sum())) >= 4  # a subsample, not everyone
    path = tmp_path / f"trial.{'csv' if fmt == 'csv' else 'parquet'}"
    (trial.to_csv(path, index=False) if fmt == "csv" else trial.to_parquet(path, index=False, row_group_size=700))
    kw = dict(rule=rule, params=params, client="pid", session="week", score="wai", scale="wai-sr", out_format=fmt)
    m_mem = detect_file(path, tmp_path / "mem", **kw)
    m_str = detect_file(path, tmp_path / "str", stream=True, chunk_rows=500, **kw)
    assert m_mem["params"] == m_str["params"] and m_mem["counts"] == m_str["counts"]
    same_tables(labels(tmp_path / "mem", fmt), labels(tmp_path / "str", fmt))
    assert json.loads((tmp_path / "str" / "manifest.json").read_text())["mode"] == "streaming"


def test_streaming_reports_every_problem_and_writes_nothing(tmp_path):
    df = pd.DataFrame({"client": [1, 1, 1, 2, 2, 2, 3, 3], "session": [1, 2, 3, 1, 1, 2, 1, 2],
                       "score": [5.0, "x", 4, 3, 3, 4, 100, 5]})
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InvalidInputError) as info:
        detect_file(path, tmp_path / "out", stream=True, chunk_rows=3, scale=(0, 10))
    text = str(info.value)
    assert "1 row with a non-numeric score" in text
    assert "2 rows share their client and session" in text
    assert "1 row with a score outside the scale" in text
    assert not (tmp_path / "out").exists()


def test_streaming_needs_grouped_clients(tmp_path):
    df = pd.DataFrame({"client": [1, 1, 2, 2, 1], "session": [1, 2, 1, 2, 3], "score": [5.0, 4, 3, 3, 4]})
    path = tmp_path / "ungrouped.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InvalidInputError, match="reading in pieces needs the rows of each client together"):
        detect_file(path, tmp_path / "out", stream=True, chunk_rows=2)
    # in memory the order does not matter
    detect_file(path, tmp_path / "out2", rule="vshape", params={"pooled_sd": 1.0})


def test_iter_chunks_row_numbers(tmp_path, trial):
    path = tmp_path / "t.parquet"
    trial.to_parquet(path, index=False, row_group_size=1000)
    chunks = list(iter_chunks(path, chunk_rows=1000))
    assert sum(len(c) for c in chunks) == len(trial)
    assert chunks[1].index[0] == len(chunks[0])


def test_wide_input(tmp_path):
    wide = pd.DataFrame({"id": ["a", "b"], "wai_s1": [50, 40], "wai_s2": [51, 41], "wai_s3": [38, 40], "wai_s4": [50, 41]})
    path = tmp_path / "wide.xlsx"
    wide.to_excel(path, index=False)
    m = detect_file(path, tmp_path / "out", wide={"client": "id"}, rule="vshape", params={"pooled_sd": 1.0})
    assert m["counts"]["rows"] == 8 and m["counts"]["clients"] == 2
