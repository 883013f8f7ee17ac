"""The result tables: columns, types, ordering, every row and client kept."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at

EPISODE_COLUMNS = ["client", "episode", "rule", "start", "trough", "end", "status", "depth", "pre", "trough_score", "phase"]
SESSION_COLUMNS = ["client", "session", "score", "label", "episode"]
CLIENT_COLUMNS = ["client", "n_sessions", "included", "reason", "n_ruptures", "n_repaired", "n_unresolved", "pattern"]


@pytest.fixture
def panel():
    # three clients with string ids, rows shuffled, one missed session as NaN
    rows = [
        ("b", 3, 50.0), ("a", 1, 5.0), ("b", 1, 50.0), ("b", 2, 40.0), ("a", 3, 5.0),
        ("a", 2, np.nan), ("c", 1, 3.0), ("b", 4, 50.0), ("a", 4, 5.5),
    ]
    return pd.DataFrame(rows, columns=["client", "session", "score"])


@pytest.mark.parametrize("rule, params", [("vshape", {"pooled_sd": 1.0}), ("stiles2004", {}),
                                          ("strauss2006", {}), ("gumz2012", {"pooled_sd": 1.0}),
                                          ("sudden_loss", {"cutoff": 2.0})])
def test_schema(panel, rule, params):
    res = at.detect(panel, rule=rule, **params)
    assert res.episodes.columns.tolist()[: len(EPISODE_COLUMNS)] == EPISODE_COLUMNS
    assert res.sessions.columns.tolist()[: len(SESSION_COLUMNS)] == SESSION_COLUMNS
    assert res.clients.columns.tolist()[: len(CLIENT_COLUMNS)] == CLIENT_COLUMNS
    assert res.clients["client"].tolist() == ["a", "b", "c"]
    assert res.sessions[["client", "session"]].values.tolist() == [
        ["a", 1], ["a", 2], ["a", 3], ["a", 4], ["b", 1], ["b", 2], ["b", 3], ["b", 4], ["c", 1]
    ]
    assert len(res.sessions) == len(panel)
    assert res.rule == rule and res.version == at.__version__
    assert res.params["min_sessions"] == 3
    assert set(res.sessions["label"].cat.categories) == {"none", "rupture", "repair", "unresolved"}
    assert res.clients.loc[res.clients["client"] == "c", "reason"].item() == "fewer than 3 observed scores (1)"


def test_int_ids_keep_their_type_and_order():
    df = pd.DataFrame({"client": [10, 2, 2, 2, 10, 10], "session": [1, 1, 2, 3, 2, 3], "score": [1.0, 2, 3, 4, 5, 6]})
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    assert res.clients["client"].tolist() == [2, 10]
    assert res.clients["client"].dtype == np.int64
    assert res.sessions["client"].dtype == np.int64


def test_summary_is_readable(panel):
    res = at.detect(panel, rule="vshape", pooled_sd=1.0)
    text = res.summary()
    assert "Clients: 3 in the input, 2 analysed, 1 not analysed" in text
    assert "1 x fewer than 3 observed scores (1)" in text
    assert "Episodes: 1 (1 repaired, 0 unresolved)" in text
    assert "repaired          1   50.0%" in text
    assert repr(res) == "<Detection rule='vshape': 3 clients, 1 episodes, 9 sessions>"


def test_list_rules_table():
    t = at.list_rules()
    assert t.columns.tolist() == ["name", "family", "summary", "reference", "parameters", "input"]
    assert t.set_index("name").loc["psq", "input"] == "psq"
    assert t.set_index("name").loc["observer", "input"] == "observer codes"
    assert set(t.loc[~t["name"].isin(["psq", "observer", "observer_significant"]), "input"]) == {"scores"}
    assert set(t["name"]) >= {"vshape", "stiles2004", "strauss2006", "gumz2012", "sudden_loss"}
    row = t.set_index("name").loc["strauss2006"]
    assert row["family"] == "vshape" and "k=1.0" in row["parameters"]
    assert "unverified" in row["reference"]


def test_rule_object_can_be_passed():
    from alliance_ts.rules import VShape

    res = at.detect([5.0, 5.0, 2.0, 5.0], rule=VShape(k=2.0, sd="pooled", pooled_sd=1.0))
    assert res.rule == "vshape" and len(res.episodes) == 1
    with pytest.raises(ValueError, match="pass parameters to the rule object"):
        at.detect([5.0, 5.0, 2.0, 5.0], rule=VShape(), k=3)
