"""methods_text: the Methods paragraph, on hand-worked results."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.methods import library_citation, methods_text
from alliance_ts.rules.sudden_loss import TANG_1999, WIEDEMANN_2020
from alliance_ts.rules.vshape import GUMZ_2012, STILES_2004

# A: 8 scores, B: 2 scores (< min_sessions 3: excluded), C: 4, D: 5, E: 4 (as in test_tables)
ROWS = {"A": [50, 50, 44, 50, 50, 38, 49, 50], "B": [50, 50], "C": [50, 51, 50, 51], "D": [50, 44, 50, 44, 50],
        "E": [50, 50, 40, 41]}
DATA = pd.DataFrame([(c, i + 1, s) for c, v in ROWS.items() for i, s in enumerate(v)],
                    columns=["client", "session", "score"])
# F: a row without a score at session 4; G: no row for session 4: 2 missed sessions in the observed spans
GAPS = pd.DataFrame({"client": ["F"] * 5 + ["G"] * 4, "session": [1, 2, 3, 4, 5, 1, 2, 3, 5],
                     "score": [50, 50, 38, np.nan, 50, 50, 50, 38, 50]})


@pytest.fixture(scope="module")
def res():
    return at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=2.0)


@pytest.fixture(scope="module")
def text(res):
    return res.methods()


def paragraph(text):
    return text.split("\n\nReferences\n")[0]


def references(text):
    return text.split("\n\nReferences\n")[1].splitlines()


def test_rule_version_and_summary(res, text):
    assert text.startswith('Alliance ruptures in the session-by-session alliance scores were identified with the rule '
                           f'"vshape" of alliance_ts (version {at.__version__}), which the library summarises at its '
                           'default parameters (the criterion used here follows) as "A '
                           "fall of at least k SD within max_decline sessions")  # sd="pooled" is not the default
    assert references(text)[-1] == f"- alliance_ts (version {at.__version__}) [Computer software]."
    assert library_citation("1.2.3") == "alliance_ts (version 1.2.3) [Computer software]."


def test_every_parameter_with_its_value(res, text):
    assert ('The rule\'s parameters were k = 2, sd = "pooled", reference = "previous", max_decline = 3, tol = 0.5, '
            "repair_within = None, min_sd = None and pooled_sd = 2.") in text
    for name in res.params:
        if name not in ("scale", "min_sessions"):
            assert f"{name} = " in text
    assert 'Parameters that differ from the rule\'s defaults: sd = "pooled" (default "max").' in text
    assert "The sample-wide value pooled_sd (pooled within-client SD in score units) was estimated" in text


def test_inclusion_counts_and_reason(text):
    # 5 clients, B has 2 observed scores: 4 / 5 = 80.0% included, 1 / 5 = 20.0% excluded
    assert "Clients with fewer than 3 observed scores were not analysed (min_sessions = 3)." in text
    assert ("Altogether, 4 of 5 clients (80.0%) were included and 1 (20.0%) was excluded (fewer than 3 observed "
            "scores: 1).") in text


def test_reasons_are_grouped_without_the_per_client_count():
    # min_sessions 5: B (2 scores), C (4) and E (4) excluded -> "fewer than 5 observed scores" x 3; A, D included:
    # 2 / 5 = 40.0%, 3 / 5 = 60.0%
    res = at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=2.0, min_sessions=5)
    assert ("Altogether, 2 of 5 clients (40.0%) were included and 3 (60.0%) were excluded (fewer than 5 observed "
            "scores: 3).") in res.methods()


def test_criterion_and_provenance(text):
    assert ("whose score lay at least k = 2 SDs below the score at the top of the fall (the pre-rupture level), the SD "
            "being the pooled within-client SD (2 score units).") in text
    assert "the pre-rupture level minus 0.5 times the threshold of k SDs" in text
    assert "are the library's choices" in text
    assert f"- {STILES_2004}" in references(text) and f"- {GUMZ_2012}" in references(text)


def test_missed_sessions(text):
    assert "Missed sessions (none within the clients' observed spans) were not imputed" in text
    assert "a row without a score takes the label of the episode it lies inside" in text
    gaps = at.detect(GAPS, rule="vshape", sd="pooled", pooled_sd=2.0)
    # F misses session 4 (a row without a score), G session 4 (no row): 1 + 1 = 2
    assert "Missed sessions (2 within the clients' observed spans, from the first to the last session with a " \
           "score) were not imputed" in gaps.methods()


def test_no_scale_reports_the_observed_range(text):
    # the lowest score is 38 (A, session 6), the highest 51 (C)
    assert ("No score scale was declared, so scores were not checked against a valid range; the observed scores "
            "ranged from 38 to 51. Declaring the instrument's scale") in text


def test_declared_scale_and_its_reference():
    res = at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=2.0, scale="wai-sr")
    text = res.methods()
    # WAI-SR: 12 items scored 1 to 5 -> totals 12 to 60
    assert ("Scores were total scores of the Working Alliance Inventory, short revised (12 items scored 1 to 5) and "
            "were checked against their valid range, 12 to 60;") in text
    assert any(r.startswith("- Hatcher, R. L., & Gillaspy, J. A. (2006)") for r in references(text))
    pair = at.detect(DATA, rule="vshape", sd="pooled", pooled_sd=2.0, scale=(0, 70)).methods()
    assert "Scores were checked against the declared valid range, 0 to 70;" in pair


def test_missing_codes_sentences(res, text):
    assert "No missing-value codes were declared." in text
    coded = dataclasses.replace(res, info={**res.info, "missing": [999, -99], "missing_counts": {999.0: 3}})
    assert ("The missing-value codes 999 and -99 were declared; 3 cells (3 holding 999 and 0 holding -99) were "
            "recoded as missed sessions.") in coded.methods()
    one = dataclasses.replace(res, info={**res.info, "missing": [-1.0], "missing_counts": {-1.0: 1}})
    assert "The missing-value code -1 was declared; 1 cell (1 holding -1) was recoded as missed sessions." \
        in one.methods()
    # without the information (e.g. a result of for_rater) nothing is claimed
    bare = dataclasses.replace(res, info={})
    assert "missing-value" not in bare.methods()


def test_missing_codes_from_detect():
    df = DATA.copy()
    df.loc[(df["client"] == "A") & (df["session"] == 8), "score"] = 999
    res = at.detect(df, rule="vshape", sd="pooled", pooled_sd=2.0, missing=[999])
    assert "The missing-value code 999 was declared; 1 cell (1 holding 999) was recoded as missed sessions." \
        in res.methods()


def test_dates_sentences(res):
    weekly = dataclasses.replace(res, info={**res.info, "dates": True, "session_every": "7D"})
    assert ("Sessions were given as dates; session k was the one k - 1 steps of 7 days after the client's first date "
            "(rounded to the nearest step), so gaps in attendance became missed sessions.") in weekly.methods()
    ordered = dataclasses.replace(res, info={**res.info, "dates": True, "session_every": None})
    assert ("Sessions were given as dates and numbered 1, 2, 3, ... in date order within each client, so no session "
            "could be missed.") in ordered.methods()
    assert "dates" not in paragraph(res.methods())


def test_observed_range_from_info(res):
    other = dataclasses.replace(res, info={**res.info, "observed_range": [1.5, 7.0]})
    assert "the observed scores ranged from 1.5 to 7." in other.methods()


def test_deterministic(res, text):
    assert res.methods() == text == methods_text(res)


def test_presets_say_what_they_are_and_what_changed():
    text = at.detect(DATA, rule="stiles2004", k=3).methods()
    assert 'with the rule "stiles2004" of alliance_ts' in text
    assert 'a preset (a named set of parameter values) of its "vshape" rule' in text
    assert "not verified against the original paper" in text
    assert "Parameters that differ from the preset's defaults: k = 3 (default 2)." in text
    assert "provided it came within 1 observed session of the trough" in text  # repair_within = 1


def test_recommended_run():
    res = at.detect(at.simulate(50, rng=1).scores, rule="recommended", scale="wai-sr")
    text = res.methods()
    assert 'a preset (a named set of parameter values) of its "robust" rule' in text
    assert "This rule is the library's own design, not a published criterion" in text
    sd, phi = res.params["pooled_noise"]
    assert f"pooled_noise = ({sd:.4g}, {phi:.4g})" in text
    assert "alpha = 0.04" in text and "upper alpha / (2(n - 1)) quantile" in text
    assert "Altogether, 50 of 50 clients (100.0%) were included and none was excluded." in text
    assert any(r.startswith("- Smyth, G. K. (2004)") for r in references(text))


def test_sudden_loss_changepoint_and_psq():
    sim = at.simulate(20, rng=3).scores
    text = at.detect(sim, rule="sudden_loss", cutoff=5.0).methods()
    assert "(1) the drop from session n to n + 1 was at least 5 score units" in text
    assert "Tang and DeRubeis (1999)" in text and "the library's extension" in text
    assert f"- {TANG_1999}" in references(text) and f"- {WIEDEMANN_2020}" in references(text)
    text = at.detect(sim, rule="changepoint").methods()
    assert "optimal partitioning" in text and "(the Bayesian information criterion)" in text
    df = pd.DataFrame({"client": 1, "session": [1, 2, 3, 4, 5] * 2, "who": ["p"] * 5 + ["t"] * 5,
                       "rupture": [1, 4, 3, 1, 5] * 2, "withdrawal": [1] * 10, "resolved": [None, 2, 2, None, 5] * 2})
    text = at.detect(df, rule="psq", rater="who").methods()
    assert text.startswith("Ruptures reported in post-session questionnaires were identified")
    assert "answered at option rank 3 or higher" in text and "rank 4 or higher" in text
    assert "A course is one client's answers from one rater (1 client; raters p and t)." in text
    assert "Altogether, 2 of 2 courses (100.0%) were included and none was excluded." in text
    assert "scale" not in paragraph(text).lower().replace("answer scale", "")
    assert any(r.startswith("- Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018)") for r in references(text))


def test_a_registered_function_rule():
    @at.register_rule("test_methods_drop", summary="A fall of at least `size` points.",
                      reference="Doe, J. (2020). A rule. Journal, 1, 1-2.")
    def drop(scores, *, size=10.0):
        return [(i, None) for i in range(1, len(scores)) if scores[i - 1] - scores[i] >= size][:1]

    try:
        text = at.detect(DATA, rule="test_methods_drop").methods()
    finally:
        at.unregister_rule("test_methods_drop")
    assert 'which the library summarises as "A fall of at least `size` points."' in text
    assert "Its reference in the library's registry is: Doe, J. (2020). A rule. Journal, 1, 1-2." in text
    assert "The rule's parameters were size = 10." in text
    assert "- Doe, J. (2020). A rule. Journal, 1, 1-2." in references(text)


def test_not_a_detection():
    with pytest.raises(InvalidInputError, match="expected a Detection"):
        methods_text(DATA)
