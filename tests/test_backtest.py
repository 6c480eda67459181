"""The backtest on small synthetic streams with known answers, and `greenops backtest` end to end (reduced)."""

import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.backtest import strategies
from controller.backtest.data import Stream
from controller.backtest.learners import ModelBank
from controller.backtest.timeline import Outcome, Retrain, Setup, carbon_shift, score, serving_days
from controller.demo.stream import DriftingStream, DriftScenario

from .conftest import VENV_BIN

FLIP_DAY, DAYS, ROWS_PER_DAY = 60, 120, 40


def flip_stream() -> Stream:
    """label = (x0 > 0) until FLIP_DAY, then (x0 < 0): every model trained before the flip fails after it."""
    rng = np.random.default_rng(0)
    day = np.repeat(np.arange(DAYS), ROWS_PER_DAY)
    x = rng.normal(size=(len(day), 2))
    label = np.where(day < FLIP_DAY, x[:, 0] > 0, x[:, 0] < 0).astype(int)
    return Stream("flip", x, label, day, date(2021, 1, 4), ("x0", "x1"), ())


def flip_setup(carbon: np.ndarray | None = None) -> Setup:
    stream = flip_stream()
    bank = ModelBank(stream, "tree", train_days=3, horizon_days=31, seed=0)
    hourly = carbon if carbon is not None else np.full(24, 100.0)
    return Setup(stream, bank, first_day=10, window_days=1, max_interval_days=30, target=0.9, compliance=0.9,
                 carbon_hourly=hourly)


def test_max_interval_caps_every_strategy() -> None:
    setup = flip_setup()
    assert serving_days(setup, [15, 100]) == [10, 15, 45, 75, 100]
    assert serving_days(setup, []) == [10, 40, 70, 100]


def test_fixed_cadence_energy_and_carbon_are_those_of_the_retrains() -> None:
    night_is_green = np.array([10.0 if hour == 3 else 100.0 for hour in range(24)])
    setup = flip_setup(night_is_green)
    weekly = strategies.fixed(setup, 7)
    assert [r.day for r in weekly.retrains] == list(range(17, DAYS, 7))
    assert weekly.energy_kwh == pytest.approx(sum(setup.bank[r.day].energy_kwh for r in weekly.retrains))
    at_night = score(setup, "weekly at 03:00", [Retrain(r.day, 3) for r in weekly.retrains])
    assert at_night.carbon_kg == pytest.approx(weekly.carbon_kg / 10)
    assert weekly.carbon_kg == pytest.approx(weekly.energy_kwh * 100 / 1000)


def test_carbon_shift_compares_the_start_hours_with_each_days_greenest_hour_and_the_best_single_hour() -> None:
    """Even days are greenest at 03:00 (10 g), odd days at 05:00; noon is 100 g and every other hour 80 g."""
    day_of = [(10.0 if h == 3 else 80.0) if d % 2 == 0 else (10.0 if h == 5 else 80.0) for d in range(2)
              for h in range(24)]
    carbon = np.asarray(day_of)
    carbon[12], carbon[24 + 12] = 100.0, 100.0
    setup = flip_setup(carbon)
    outcome = Outcome("at 03:00", tuple(Retrain(day, 3) for day in (12, 13, 14, 15)), np.zeros(0), 0.0, 0.0, 1.0)
    energy = [setup.bank[d].energy_kwh for d in (12, 13, 14, 15)]
    shift = carbon_shift(setup, outcome)
    assert shift["possible"] == pytest.approx(sum(energy) * 90)
    assert shift["saved"] == pytest.approx((energy[0] + energy[2]) * 90 + (energy[1] + energy[3]) * 20)
    assert shift["fixed"] == pytest.approx(max((energy[0] + energy[2]) * 90 + (energy[1] + energy[3]) * 20,
                                               (energy[0] + energy[2]) * 20 + (energy[1] + energy[3]) * 90))


def test_quality_and_compliance_follow_the_concept_flip() -> None:
    setup = flip_setup()
    daily = strategies.fixed(setup, 1, "daily")
    never = score(setup, "no retrain", [])
    flip = FLIP_DAY - setup.first_day
    assert daily.window_quality[:flip].min() > 0.9  # the easy concept is learnt
    assert never.window_quality[flip:flip + 5].max() < 0.1  # the old model is wrong after the flip
    assert daily.window_quality[flip + 5:].min() > 0.9  # daily retraining recovers once the window holds new data
    assert daily.compliance == pytest.approx(float((daily.window_quality >= 0.9).mean()))


def test_triggers_react_to_the_flip() -> None:
    setup = flip_setup()
    threshold = strategies.accuracy_threshold(setup)
    assert FLIP_DAY + 1 in [r.day for r in threshold.retrains]  # the day after the first failing window
    adwin = strategies.adwin(setup)
    assert any(FLIP_DAY < r.day <= FLIP_DAY + 2 for r in adwin.retrains)
    patient, eager = strategies.cara(setup, alpha=5.0), strategies.cara(setup, alpha=0.5)
    assert len(eager.retrains) >= len(patient.retrains)


def test_oracle_is_the_cheapest_plan_that_meets_the_slo() -> None:
    setup = flip_setup()
    oracle = strategies.oracle(setup)
    assert oracle.compliance >= setup.compliance
    others = [strategies.fixed(setup, k) for k in (1, 2, 3, 5, 7, 14, 30)]
    others += [strategies.accuracy_threshold(setup), strategies.adwin(setup), strategies.cara(setup, 0.5)]
    meeting = [o for o in others if o.compliance >= setup.compliance]
    assert meeting and all(oracle.energy_kwh <= o.energy_kwh for o in meeting)
    best_fixed = strategies.best_fixed_in_hindsight(setup)
    assert best_fixed.compliance >= setup.compliance
    assert all(o.compliance < setup.compliance for o in others[:7] if o.extra["every_days"] > best_fixed.extra[
        "every_days"])
    loose = strategies.oracle_cost(setup, alpha=1e-9, mean_energy=1.0)
    assert loose == pytest.approx(strategies.fixed(setup, 1).loss(), abs=1.0)  # free retrains: retrain every day


def write_stream(path: Path, days: int, rows_per_day: int) -> None:
    """A rotating-hyperplane stream (the demo's generator) as CSV with a string label."""
    stream = DriftingStream(DriftScenario(drift_rad_per_day=0.02, label_noise=0.05, features=4), seed=1)
    rng = np.random.default_rng(1)
    lines = ["f0,f1,f2,f3,note,outcome"]
    for day in range(days):
        x, y = stream.sample(rng, day, day + 1, rows_per_day)
        lines += [",".join(f"{v:.4f}" for v in row) + f",batch-a,{'UP' if label else 'DOWN'}" for row, label in zip(
            x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def write_carbon(path: Path, days: int) -> None:
    start = datetime(2021, 1, 1, tzinfo=UTC)
    lines = ["datetime_utc,intensity"]
    for hour in range(days * 24):
        moment = start + timedelta(hours=hour)
        value = 50 if moment.weekday() == 6 else 200 if 17 <= moment.hour <= 20 else 120
        lines.append(f"{moment.isoformat()},{value}")
    path.write_text("\n".join(lines) + "\n")


def backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "greenops"), "backtest", "--no-progress", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.integration
def test_reduced_backtest_end_to_end(tmp_path: Path) -> None:
    """What CI runs so the command cannot silently break: a small slice, every output checked."""
    write_stream(tmp_path / "stream.csv", days=100, rows_per_day=24)
    write_carbon(tmp_path / "carbon.csv", days=30)
    out = tmp_path / "out"
    done = backtest("--stream", str(tmp_path / "stream.csv"), "--label", "outcome", "--rows-per-day", "24",
                    "--days", "90", "--carbon", str(tmp_path / "carbon.csv"), "--carbon-column", "intensity",
                    "--reconcile-every", "14d", "--trials", "30", "--check-search-every", "2",
                    "--output-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert "| greenops |" in done.stdout and "| oracle (hindsight) |" in done.stdout
    assert (out / "results.md").read_text() in done.stdout
    for picture in ("quality.png", "energy_vs_compliance.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    names = [s["strategy"] for s in results["strategies"]]
    assert names[:3] == ["greenops", "greenops, same days at noon", "daily"] and len(names) == 9
    assert results["setup"]["dropped_columns"] == ["note"] and results["setup"]["window_days"] == 2
    daily = results["strategies"][2]
    assert daily["retrains"] == 90 - 42 - 1 and daily["compliance"] >= 0.9  # --slo auto: daily meets it
    greenops = results["strategies"][0]
    assert greenops["decisions"] and greenops["search_checks"]
    assert sum(greenops["gate"].values()) >= len(greenops["retrain_days"])  # every retrain went through the gate
    targets = {t["target"] for t in results["targets"]}
    assert targets >= {"energy <= 2x the hindsight oracle", "SLO compliance >= target"}
    assert not list(out.glob(".*tmp*"))  # nothing half-written left behind


@pytest.mark.integration
def test_unusable_input_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    write_stream(tmp_path / "stream.csv", days=60, rows_per_day=4)
    wrong = backtest("--stream", str(tmp_path / "stream.csv"), "--label", "class", "--rows-per-day", "4",
                     "--output-dir", str(tmp_path / "out"))
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert ("stream.csv: no column 'class' (from --label); the columns are: f0, f1, f2, f3, note, outcome"
            in wrong.stderr)
    (tmp_path / "timed.csv").write_text("when,x,y\n2021-01-02,1,0\n2021-01-01,2,1\n")
    unsorted = backtest("--stream", str(tmp_path / "timed.csv"), "--label", "y", "--time-column", "when")
    assert unsorted.returncode == 1 and "timed.csv:3: rows are not in time order by when" in unsorted.stderr
    both = backtest("--stream", "x.csv", "--label", "y", "--time-column", "t", "--rows-per-day", "3")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    missing = backtest("--stream", str(tmp_path / "nope.csv"), "--label", "y", "--rows-per-day", "3")
    assert missing.returncode == 1 and "nope.csv: no such file" in missing.stderr
    assert not list((tmp_path / "out").iterdir())  # nothing written for input that cannot be used
    (tmp_path / "empty.csv").write_text("")
    empty = backtest("--stream", str(tmp_path / "empty.csv"), "--label", "y", "--rows-per-day", "3")
    assert empty.returncode == 1 and "empty.csv: the file is empty" in empty.stderr
    (tmp_path / "inf.csv").write_text("x,y\n1,0\ninf,1\n")
    infinite = backtest("--stream", str(tmp_path / "inf.csv"), "--label", "y", "--rows-per-day", "1")
    assert infinite.returncode == 1 and "inf.csv:3: column 'x' is infinite" in infinite.stderr
    stream = ["--stream", str(tmp_path / "stream.csv"), "--label", "outcome", "--rows-per-day", "4"]
    short = backtest(*stream, "--window", "10d", "--max-interval", "5d")
    assert short.returncode == 1 and "maxInterval 5d is shorter than the evaluation window 10d" in short.stderr
    (tmp_path / "taken").write_text("a file")
    taken = backtest(*stream, "--output-dir", str(tmp_path / "taken"))
    assert taken.returncode == 1 and "--output-dir" in taken.stderr and "cannot create it" in taken.stderr
    for result in (empty, infinite, short, taken):
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_days_without_rows_are_left_out_of_the_scores() -> None:
    """A timestamped stream with a gap: its windows have no quality, and compliance counts only the others."""
    full = flip_stream()
    kept = ~np.isin(full.day_of_row, [30, 31])
    stream = Stream("gap", full.features[kept], full.labels[kept], full.day_of_row[kept], full.first_day,
                    full.feature_names, ())
    setup = Setup(stream, ModelBank(stream, "tree", 3, 31, 0), 10, 1, 30, 0.9, 0.9, np.full(24, 100.0))
    daily = strategies.fixed(setup, 1, "daily")
    assert np.isnan(daily.window_quality[20:22]).all() and not np.isnan(daily.window_quality[:20]).any()
    scored = daily.window_quality[~np.isnan(daily.window_quality)]
    assert daily.compliance == pytest.approx(float((scored >= 0.9).mean()))
    assert strategies.oracle(setup).compliance >= 0.9
