"""The benchmark harness, the demo and the benchmark scripts run end to end."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

import alliance_ts as at
from alliance_ts.benchmark import SCENARIOS, operating_rules, run_accuracy
from alliance_ts.demo import main as demo_main

ROOT = Path(__file__).resolve().parents[1]


def test_run_accuracy_covers_every_registered_rule():
    df = run_accuracy(["clear_v", "no_ruptures"], seeds=[1], n_clients=60)
    rules = at.list_rules()
    score_rules = set(rules.loc[rules["input"] == "scores", "name"])
    other = {"psq", "observer", "observer_significant"}
    assert score_rules == set(rules["name"]) - other  # answers and codes are benchmarked on what they read
    assert set(df["rule"]) == score_rules | {"changepoint_calibrated", "oracle", "psq_patient", "psq_therapist",
                                             "observer", "observer_significant"}
    assert set(df.loc[df["input"] == "scores", "rule"]) == score_rules | {"changepoint_calibrated"}
    # the oracle reads the scores and the simulator's noise SDs
    assert df.loc[df["rule"] == "oracle", "input"].unique().tolist() == ["scores+noise_sd"]
    assert df.loc[df["rule"] == "oracle", "params"].unique().tolist() == ["true noise SD"]
    assert set(df.loc[df["input"] == "observer", "rule"]) == {"observer", "observer_significant"}
    # every planted rupture shows in the simulated codes: the significant-marker rule finds most of them
    clear = df[(df["scenario"] == "clear_v") & (df["rule"] == "observer_significant")]
    assert clear["recall"].iloc[0] > 0.8
    assert set(df["scenario"]) == {"clear_v", "no_ruptures"}
    assert {"f1", "precision", "recall", "false_alarm_rate", "kappa", "seconds"} <= set(df.columns)
    none = df[df["scenario"] == "no_ruptures"]
    assert (none["n_true"] == 0).all()


def test_scenarios_are_valid_simulations():
    for s in SCENARIOS.values():
        sim = at.simulate(5, rng=1, **s.params)
        assert len(sim.clients) == 5


def test_scenarios_can_cap_the_number_of_clients():
    df = run_accuracy(["long_dip"], ["robust"], seeds=[1], n_clients=400)
    assert df["n_clients"].tolist() == [SCENARIOS["long_dip"].n_clients] == [40]


def test_demo_writes_tables(tmp_path, capsys):
    assert demo_main(["--out", str(tmp_path), "--clients", "40", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Clients: 40 in the input" in out and "Client patterns" in out
    for name in ("episodes.csv", "sessions.csv", "clients.csv", "shapes.csv", "input_scores.csv", "true_episodes.csv"):
        assert (tmp_path / name).exists()
    clients = pd.read_csv(tmp_path / "clients.csv")
    assert len(clients) == 40


def test_accuracy_script_writes_results(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--seeds", "1", "--clients", "30",
         "--scenarios", "clear_v", "no_ruptures", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    df = pd.read_csv(tmp_path / "accuracy.csv")
    n_score_rules = int((at.list_rules()["input"] == "scores").sum())
    # the score rules, the calibrated change point, the oracle, psq (two raters) and the two observer rules,
    # per scenario
    assert "rule" in df.columns and len(df) == 2 * (n_score_rules + 1 + 1 + 2 + 2)
    assert "## Self-report and observer rules" in (tmp_path / "accuracy.md").read_text()
    assert (tmp_path / "accuracy.md").read_text().startswith("# Accuracy of the detection rules")
    assert (tmp_path / "accuracy_f1.png").stat().st_size > 1000


def test_operating_script_writes_results(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "operating.py"), "--seeds", "1", "--clients", "30",
         "--scenarios", "clear_v", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    df = pd.read_csv(tmp_path / "operating.csv")
    assert set(df["rule"]) == set(operating_rules()) and "oracle" in set(df["rule"])
    assert df.groupby("rule")["default"].sum().eq(1).all()
    text = (tmp_path / "operating.md").read_text()
    assert text.startswith("# Operating curves: the rules at matched false-alarm rates")
    for heading in ("## F1 at 5% false alarms", "## Recall at 1% false alarms", "## At the default setting",
                    "## F1 relative to the oracle's at 5% false alarms", "## How to read"):
        assert heading in text
    assert (tmp_path / "operating.png").stat().st_size > 1000


def test_speed_script_runs_small(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--clients", "2000", "--repeat", "1", "--no-write"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "x baseline" in run.stdout


def test_monitor_script_runs_small(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "monitor.py"), "--seeds", "1", "--clients", "40",
         "--scenarios", "srs_092", "--speed-clients", "2000", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(tmp_path / "monitor.csv")
    assert {"drop", "srs36"} <= set(table["rule"].astype(str).str.split(" ").str[0])
    assert (tmp_path / "monitor.md").read_text().startswith("# Monitoring rules on the simulated benchmark")
