"""Shared noise statistics (alliance_ts.noise): trimmed scale, moderated SD, penalties, row sums."""

import math

import numpy as np
import pytest
from scipy import stats

from alliance_ts.noise import (
    aic_penalty,
    bic_penalty,
    moderated_sd,
    pooled_trimmed_scale,
    row_sum,
    trimmed_scale,
)


def test_trimmed_scale_by_hand():
    # 10 values, trim 0.2: drop the 2 smallest and 2 largest -> keep 6 values
    v = np.array([-30.0, -2, -1, 0, 0, 1, 1, 2, 3, 50])
    sd, df, loc = trimmed_scale(v, trim=0.2)
    kept = np.array([-1.0, 0, 0, 1, 1, 2])
    # a normal truncated to the central 60% (q = 0.8416) has variance
    # 1 - 2 q phi(q) / 0.6 = 0.2146; 10 values keep more spread: + b(0.2) / 10 with
    # b(0.2) = 1.3456 - 2.8908 * 0.2 + 0.8745 * 0.04 = 0.8024 -> factor 0.2948
    q = stats.norm.isf(0.2)
    factor = 1 - 2 * q * stats.norm.pdf(q) / 0.6 + (1.3456 - 2.8908 * 0.2 + 0.8745 * 0.04) / 10
    assert round(factor, 4) == 0.2948
    assert math.isclose(sd, math.sqrt(np.var(kept, ddof=1) / factor))
    assert df == 5 and math.isclose(loc, kept.mean())
    # the outliers do not matter
    sd2, _, _ = trimmed_scale(np.array([-3.0, -2, -1, 0, 0, 1, 1, 2, 3, 4]), trim=0.2)
    assert math.isclose(sd, sd2)
    # rows, with NaN padding; fewer than 4 values are not trimmed
    rows = np.array([[1.0, 2.0, 4.0, np.nan], [0.0, 0.0, 0.0, 0.0]])
    sd, df, _ = trimmed_scale(rows)
    assert math.isclose(sd[0], np.std([1, 2, 4], ddof=1)) and df[0] == 2
    assert sd[1] == 0.0


def test_trimmed_variance_is_unbiased_in_small_samples():
    z = np.random.default_rng(3).normal(size=(100_000, 10))
    sd, _, _ = trimmed_scale(z)
    assert np.mean(sd**2) == pytest.approx(1.0, abs=0.02)


def test_pooled_trimmed_scale_matches_rowwise_and_is_unbiased_for_normal_noise():
    rng = np.random.default_rng(0)
    v = rng.normal(0, 3.0, 200_001)
    assert math.isclose(pooled_trimmed_scale(v), trimmed_scale(v)[0], rel_tol=1e-9)
    assert abs(pooled_trimmed_scale(v) - 3.0) < 0.03
    # rounded to whole points it stays within 3% of the SD, where the MAD is 13% low:
    # for SD 3.4 the MAD is 0.6745 * 3.4 = 2.29, rounded to 2, times 1.4826 = 2.97
    w = np.round(rng.normal(0, 3.4, 200_001))
    assert abs(pooled_trimmed_scale(w) / np.std(w) - 1) < 0.03
    mad = 1.4826 * np.median(np.abs(w - np.median(w)))
    assert mad == pytest.approx(2.9652) and mad / np.std(w) < 0.88


def test_row_sum_does_not_depend_on_padding():
    # numpy's pairwise sum of a long row can differ in the last bit once zeros are
    # appended; the running sum cannot (x + 0.0 == x exactly)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 37)) * 1e3
    padded = np.concatenate([x, np.zeros((200, 91))], axis=1)
    assert np.array_equal(row_sum(x), row_sum(padded))
    sd_a, _, loc_a = trimmed_scale(x)
    sd_b, _, loc_b = trimmed_scale(np.concatenate([x, np.full((200, 91), np.nan)], axis=1))
    assert np.array_equal(sd_a, sd_b) and np.array_equal(loc_a, loc_b)


def test_moderated_sd_by_hand():
    # own SD 2 with 4 df, pooled 1 with prior 12 df: sqrt((4 * 4 + 12 * 1) / 16) = sqrt(1.75)
    sd, df = moderated_sd(np.array([2.0, np.nan]), np.array([4, 0]), pooled=1.0, prior_df=12.0)
    assert sd[0] == pytest.approx(math.sqrt(1.75)) and df[0] == 16.0
    # no own estimate: the pooled one
    assert sd[1] == pytest.approx(1.0) and df[1] == 12.0
    # no pooled estimate: the own one, undefined without df
    sd, df = moderated_sd(np.array([2.0, 3.0]), np.array([4, 0]), pooled=math.nan, prior_df=12.0)
    assert sd[0] == 2.0 and np.isnan(sd[1]) and df[0] == 4.0 and np.isnan(df[1])


def test_penalties_by_hand():
    # BIC: 2 * 3^2 * ln(20) = 53.925; ln(max(n, 2)) for n < 2; AIC: 4 * 3^2 = 36
    assert bic_penalty(3.0, np.array([20]))[0] == pytest.approx(2 * 9 * math.log(20))
    assert bic_penalty(3.0, np.array([1]))[0] == pytest.approx(2 * 9 * math.log(2))
    assert aic_penalty(3.0, np.array([20, 5])).tolist() == [36.0, 36.0]
