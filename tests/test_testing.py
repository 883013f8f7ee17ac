"""The property-testing toolkit: built-in rules pass, broken toy rules are caught."""

import random
from dataclasses import dataclass

import numpy as np
import pytest

import alliance_ts as at
from alliance_ts.panel import Block
from alliance_ts.rules import BlockResult, Rule, scan_episodes
from alliance_ts.testing import RuleCheckError, RuleChecks, check_rule, run_property
from alliance_ts.testing.strategies import ScaleSpec

# ----------------------------------------------------------------------------
# every built-in rule passes the whole suite (one pytest test per property)


class TestVshape(RuleChecks):
    rule = "vshape"


class TestStiles2004(RuleChecks):
    rule = "stiles2004"


class TestStrauss2006(RuleChecks):
    rule = "strauss2006"


class TestGumz2012(RuleChecks):
    rule = "gumz2012"


class TestRecommended(RuleChecks):
    rule = "recommended"


class TestChangePoint(RuleChecks):
    rule = "changepoint"


class TestScan(RuleChecks):
    rule = "scan"


class TestRobustClientNoise(RuleChecks):
    rule = "robust"
    params = {"noise": "client", "window": 1}


class TestSuddenLoss(RuleChecks):
    # an absolute cut-off in score units needs one scale: 0-100 in half points
    rule = "sudden_loss"
    params = {"cutoff": 5.0}
    scale = ScaleSpec(None, 0, 100, 0.5)


def test_every_registered_rule_is_covered():
    covered = {c.rule for c in (TestVshape, TestStiles2004, TestStrauss2006, TestGumz2012,
                                 TestRecommended, TestChangePoint, TestRobustClientNoise, TestSuddenLoss, TestScan)}
    rules = at.list_rules()
    # every rule that reads scores; psq reads questionnaire answers (tests/test_psq.py)
    assert covered == set(rules.loc[rules["input"] == "scores", "name"])


# ----------------------------------------------------------------------------
# deliberately broken toy rules, and the property that catches each


def caught(rule, prop, shrink=False, **params):
    # Shrinking to the minimal example is what users get (profile "ci"); it is
    # shown once below (flags_flat) and skipped elsewhere to keep CI fast.
    with pytest.raises(RuleCheckError) as info:
        run_property(rule, prop, params, profile="ci" if shrink else "quick")
    text = str(info.value)
    assert f"fails property {prop!r}" in text
    assert "Failing test case" in text or "Falsifying example" in text or "not deterministic" in text
    return text


@dataclass(frozen=True)
class FirstClientOfBlock(Rule):
    """Order-dependent: flags whichever client happens to come first in a block."""

    def label(self, block: Block) -> BlockResult:
        m, length = block.x.shape
        onset = np.zeros((m, length), dtype=bool)
        if m and length > 1 and block.n[0] >= 2:
            onset[0, 1] = True
        pre = np.full((m, length), np.nan)
        pre[:, 1:] = block.x[:, :-1] + 1.0  # one point above the previous score
        start = np.broadcast_to(np.arange(length), (m, length))
        return BlockResult.from_scan(block, scan_episodes(block.x, block.n, onset, start, pre, pre))


def test_order_dependent_rule_is_caught():
    text = caught(FirstClientOfBlock, "batch")
    assert "one at a time" in text or "tiny blocks" in text


@dataclass(frozen=True)
class LosesAClient(Rule):
    """Answers for every client but the first of each block."""

    def label(self, block: Block) -> BlockResult:
        keep = block.clients[1:]
        empty = np.zeros(0, dtype=np.int64)
        return BlockResult(keep, empty, empty, empty, empty, np.zeros(0))


def test_rule_that_loses_a_client_is_caught():
    text = caught(LosesAClient, "schema")
    assert "clients were lost or added" in text


def flags_flat(scores, *, step=0.0):
    """Flags any session that does not rise: a flat course 'ruptures'."""
    for i in range(1, len(scores)):
        if scores[i] <= scores[i - 1] - step:
            return [(i, None)]
    return []


def test_rule_that_flags_a_flat_series_is_caught():
    text = caught(flags_flat, "no_drop", shrink=True)
    assert "constant course" in text or "never-decreasing course" in text
    # the shrunk example is minimal: three sessions (the least a trajectory has)
    assert "(3 sessions at" in text


def repair_at_the_rupture(scores, *, size=1.0):
    """Mislabels: reports the repair at the very session of the rupture."""
    for i in range(1, len(scores)):
        if scores[i - 1] - scores[i] >= size:
            return [(i, i)]
    return []


def test_rule_that_mislabels_sessions_is_caught():
    text = caught(repair_at_the_rupture, "schema")
    assert "the repair is not after the trough" in text


def coin_flip(scores, *, p=0.5):
    """Non-deterministic: uses the global random module."""
    if len(scores) >= 3 and random.random() < p:
        return [(1, None)]
    return []


def test_non_deterministic_rule_is_caught():
    caught(coin_flip, "deterministic")


@dataclass(frozen=True)
class AbsoluteDrop(Rule):
    """Declares scaling invariance but uses an absolute threshold (false claim)."""

    size: float = 3.0
    invariances = ("translation", "scaling")

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m, length = x.shape
        prev = np.full_like(x, np.nan)
        prev[:, 1:] = x[:, :-1]
        with np.errstate(invalid="ignore"):
            onset = prev - x >= self.size
        start = np.broadcast_to(np.arange(length), (m, length))
        return BlockResult.from_scan(block, scan_episodes(x, n, onset, start, prev, prev))


def test_false_invariance_claim_is_caught():
    text = caught(AbsoluteDrop, "invariance")
    assert "multiplying every score" in text


@dataclass(frozen=True)
class BackwardsThreshold(Rule):
    """Declares that a larger ``size`` is stricter, but flags drops *smaller* than it."""

    size: float = 2.0
    strictness = "size"

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m, length = x.shape
        prev = np.full_like(x, np.nan)
        prev[:, 1:] = x[:, :-1]
        with np.errstate(invalid="ignore"):
            drop = prev - x
            onset = (drop > 0) & (drop < self.size)
        start = np.broadcast_to(np.arange(length), (m, length))
        return BlockResult.from_scan(block, scan_episodes(x, n, onset, start, prev, prev))


def test_non_monotone_threshold_is_caught():
    text = caught(BackwardsThreshold, "monotone")
    assert "stricter size" in text


def test_check_rule_runs_all_properties_and_reports_the_first_failure():
    check_rule("gumz2012", properties=("schema", "planted"))
    with pytest.raises(RuleCheckError, match="fails property 'no_drop'"):
        check_rule(flags_flat)


def test_registered_function_rule_works_end_to_end():
    @at.register_rule("test_big_drop", summary="fall of `size` points", reference="test",
                      detects=("v",), strictness="size")
    def big_drop(scores, *, size=10.0):
        out, i = [], 1
        while i < len(scores):
            if scores[i - 1] - scores[i] >= size:
                back = [j for j in range(i + 1, len(scores)) if scores[j] >= scores[i - 1]]
                out.append((i, back[0] if back else None))
                if not back:
                    break
                i = back[0]
            i += 1
        return out

    try:
        res = at.detect([50, 50, 38, 45, 51, 50, 30, 31], rule="test_big_drop")
        e = res.episodes
        assert e["start"].tolist() == [3, 7] and e["status"].tolist() == ["repaired", "unresolved"]
        assert e["end"].iloc[0] == 5 and e["end"].isna().tolist() == [False, True]
        assert res.params == {"size": 10.0, "scale": None, "min_sessions": 3}
        with pytest.raises(ValueError, match="valid parameters: size"):
            at.detect([1.0, 2.0, 3.0], rule="test_big_drop", sizes=3)
        check_rule("test_big_drop", properties=("schema", "no_drop", "batch", "monotone"),
                   scale=ScaleSpec(None, 0, 100, 0.5))
    finally:
        at.unregister_rule("test_big_drop")
    assert "test_big_drop" not in set(at.list_rules()["name"])


def test_bad_function_output_raises_a_clear_rule_error():
    @at.register_rule("test_bad_output", summary="x", reference="test")
    def bad(scores, *, k=1):
        return [(1, 0)] if len(scores) > 2 else []

    try:
        with pytest.raises(at.RuleError, match=r"rule 'test_bad_output' returned an invalid result:\n  - client 0"):
            at.detect([5.0, 4.0, 3.0], rule="test_bad_output")
    finally:
        at.unregister_rule("test_bad_output")
