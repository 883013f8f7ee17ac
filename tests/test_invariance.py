"""Properties that must hold for every rule on any panel (Hypothesis).

- the vectorised rules equal the plain per-client reference implementations;
- results do not depend on row order, id labels, batching or block size;
- shifting all session numbers shifts the episodes;
- every row and every client is accounted for.
"""

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import sudden_loss_episodes, sudden_loss_verdicts, vshape_reference

import alliance_ts as at
import alliance_ts.panel
from alliance_ts.testing.strategies import panels

RULES = [
    ("vshape", dict(pooled_sd=0.7)),
    ("vshape", dict(reference="mean_others", sd="client", max_decline=2, repair_within=2, tol=0.0)),
    ("vshape", dict(sd="pooled", pooled_sd=0.3, max_decline=5, tol=0.9)),
    ("stiles2004", {}),
    ("strauss2006", {}),
    ("gumz2012", dict(pooled_sd=0.7)),
    ("sudden_loss", dict(cutoff=0.5)),
    ("sudden_loss", dict(cutoff=0.25, pct=None, repair="reversal", adjust=False)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(RULES)]
# rules without a per-client reference implementation (checked by the other properties)
OTHER_RULES = [
    ("recommended", dict(pooled_noise=(0.5, 0.3))),
    ("robust", dict(noise="max", window=1, dip=False, center="none", pooled_noise=(0.4, 0.0))),
    ("robust", dict(noise="client", max_decline=1, repair_within=1, pooled_noise=(1.0, 0.2))),
]
ALL_RULES = RULES + OTHER_RULES
ALL_IDS = IDS + [f"{name}-{i + len(RULES)}" for i, (name, _) in enumerate(OTHER_RULES)]


def tables(res):
    return res.episodes, res.sessions, res.clients


def assert_same(a, b):
    for x, y in zip(tables(a), tables(b)):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))


@pytest.mark.parametrize("rule, params", RULES, ids=IDS)
@given(df=panels())
def test_equals_reference(rule, params, df):
    res = at.detect(df, check_codes=False, rule=rule, min_sessions=1, **params)
    full = at.rules.get_rule(rule).parameters()
    full.update(params)
    for cid, g in df.sort_values("session").groupby("client", sort=False):
        c = res.clients[res.clients["client"] == cid].iloc[0]
        e = res.episodes[res.episodes["client"] == cid]
        got = [(int(r.start), int(r.trough), None if pd.isna(r.end) else int(r.end)) for r in e.itertuples()]
        obs = g[g["score"].notna()]
        sess, x = obs["session"].tolist(), obs["score"].tolist()
        if rule == "sudden_loss":
            vparams = {k: full[k] for k in ("cutoff", "pct", "alpha", "adjust", "critical_value")}
            verdicts = sudden_loss_verdicts(sess, x, **vparams)
            if not any(v is not None for v in verdicts.values()):
                assert not c["included"]
                continue
            ref = [r[:3] for r in sudden_loss_episodes(sess, x, verdicts, full["repair"])]
        else:
            ref_pos = vshape_reference(x, **full) if x else None
            if ref_pos is None:
                assert not c["included"]
                continue
            ref = [(sess[a], sess[b], None if d is None else sess[d]) for a, b, d, _ in ref_pos]
        assert c["included"]
        assert got == ref


@pytest.mark.parametrize("rule, params", ALL_RULES, ids=ALL_IDS)
@given(df=panels(), seed=st.integers(0, 2**32 - 1))
def test_row_order_and_id_relabelling(rule, params, df, seed):
    base = at.detect(df, check_codes=False, rule=rule, **params)
    shuffled = df.sample(frac=1.0, random_state=seed % (2**31))
    assert_same(base, at.detect(shuffled, check_codes=False, rule=rule, **params))
    # relabel ids with a bijection that also reverses their order
    ids = sorted(df["client"].unique(), key=str)
    mapping = {old: f"id{len(ids) - i:04d}" for i, old in enumerate(ids)}
    back = {v: k for k, v in mapping.items()}
    relabelled = at.detect(df.assign(client=df["client"].map(mapping)), rule=rule, check_codes=False, **params)
    for a, b in zip(tables(base), tables(relabelled)):
        b = b.assign(client=b["client"].map(back).astype(a["client"].dtype))
        b = b.sort_values(["client"] + (["session"] if "session" in b else []) + (["episode"] if "episode" in b and "session" not in b else []), kind="stable")
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("rule, params", ALL_RULES, ids=ALL_IDS)
@given(df=panels(max_clients=5))
def test_batch_equals_one_client_at_a_time_and_any_block_size(rule, params, df):
    whole = at.detect(df, check_codes=False, rule=rule, **params)
    parts = [at.detect(g, check_codes=False, rule=rule, **params) for _, g in df.groupby("client", sort=True)]
    for _i, name in enumerate(("episodes", "sessions", "clients")):
        joined = pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(getattr(whole, name).reset_index(drop=True), joined, check_dtype=False, check_categorical=False)
    with block_cells(3):
        assert_same(whole, at.detect(df, check_codes=False, rule=rule, **params))


@pytest.mark.parametrize("rule, params", ALL_RULES, ids=ALL_IDS)
@given(df=panels(max_clients=3), shift=st.integers(-5, 100))
def test_shifting_sessions_shifts_episodes(rule, params, df, shift):
    a = at.detect(df, check_codes=False, rule=rule, **params)
    b = at.detect(df.assign(session=df["session"] + shift), check_codes=False, rule=rule, **params)
    for col in ("start", "trough", "end"):
        pd.testing.assert_series_equal(a.episodes[col] + shift, b.episodes[col])
    pd.testing.assert_series_equal(a.sessions["label"], b.sessions["label"])


@pytest.mark.parametrize("rule, params", ALL_RULES, ids=ALL_IDS)
@given(df=panels(missing=True))
def test_every_row_and_client_accounted_for(rule, params, df):
    res = at.detect(df, check_codes=False, rule=rule, **params)
    assert len(res.sessions) == len(df)
    assert sorted(res.clients["client"].tolist(), key=str) == sorted(df["client"].unique().tolist(), key=str)
    c = res.clients
    assert (c["reason"] == "").equals(c["included"])
    assert c.loc[c["included"], "pattern"].notna().all() and c.loc[~c["included"], "pattern"].isna().all()
    e = res.episodes
    assert (e["depth"] >= 0).all()
    assert (e["start"] <= e["trough"]).all()
    repaired = e["status"] == "repaired"
    assert (e.loc[repaired, "end"] > e.loc[repaired, "trough"]).all()
    assert e.loc[~repaired, "end"].isna().all()
    # labels agree with episodes
    n_repair_labels = int((res.sessions["label"] == "repair").sum())
    assert n_repair_labels == int(repaired.sum())
    assert c["n_ruptures"].fillna(0).sum() == len(e)


@pytest.mark.parametrize("rule, params", ALL_RULES, ids=ALL_IDS)
@given(level=st.floats(1, 7), n=st.integers(3, 40), rises=st.lists(st.integers(0, 2), min_size=40, max_size=40))
def test_flat_or_rising_course_has_no_rupture(rule, params, level, n, rises):
    flat = at.detect([level] * n, rule=rule, **params)
    assert len(flat.episodes) == 0
    rising = level + np.cumsum(np.array(rises[:n]) * 0.25)
    assert len(at.detect(rising, rule=rule, **params).episodes) == 0


@contextmanager
def block_cells(n):
    """Temporarily force tiny blocks (many blocks per call)."""
    old = alliance_ts.panel.BLOCK_CELLS
    alliance_ts.panel.BLOCK_CELLS = n
    try:
        yield
    finally:
        alliance_ts.panel.BLOCK_CELLS = old
