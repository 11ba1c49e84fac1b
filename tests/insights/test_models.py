"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates and forecast a later period."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dangol.cli import main
from insights.analyst import clv_report
from insights.models import BGNBD, fit_bgnbd

# Fader, Hardie & Lee 2005 (../shared/datasets/cdnow/SOURCE.md)
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def test_the_cdnow_sample_fit_is_within_one_percent_of_the_published_estimates(cdnow_sample: Path) -> None:
    report = clv_report(cdnow_sample, dt.date(1997, 9, 30), holdout_weeks=39)
    for name, value in PUBLISHED_BGNBD.items():
        assert report["bgnbd"][name] == pytest.approx(value, rel=0.01), name
    for name, value in PUBLISHED_GG.items():
        assert report["gamma_gamma"][name] == pytest.approx(value, rel=0.01), name
    assert report["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.5)
    assert report["repeat_buyers"] == 946


def test_the_39_week_holdout_forecast_tracks_what_customers_did(cdnow_sample: Path) -> None:
    hold = clv_report(cdnow_sample, dt.date(1997, 9, 30), holdout_weeks=39)["holdout"]
    assert abs(hold["total_error"]) < 0.2
    assert hold["correlation"] > 0.55


def test_the_clv_command_prints_the_parameters_as_json(cdnow_sample: Path) -> None:
    result = CliRunner().invoke(main, ["insights", "clv", "--transactions", str(cdnow_sample), "--calibration-end", "1997-09-30", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["bgnbd"]) >= {"r", "alpha", "a", "b"} and set(report["gamma_gamma"]) >= {"p", "q", "gamma"}


def test_the_clv_command_reads_a_plain_csv_of_customer_date_amount(tmp_path: Path, cdnow_sample: Path) -> None:
    rows = ["customer,date,amount"]
    for line in cdnow_sample.read_text().splitlines():
        _, customer, day, _, amount = line.split()
        rows.append(f"{customer},{day[:4]}-{day[4:6]}-{day[6:]},{amount}")
    path = tmp_path / "tx.csv"
    path.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["insights", "clv", "--transactions", str(path), "--calibration-end", "1997-09-30", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bgnbd"]["r"] == pytest.approx(PUBLISHED_BGNBD["r"], rel=0.01)


def test_a_bad_calibration_date_is_a_clear_error(cdnow_sample: Path) -> None:
    result = CliRunner().invoke(main, ["insights", "clv", "--transactions", str(cdnow_sample), "--calibration-end", "30/09/1997"])
    assert result.exit_code == 2 and "--calibration-end" in result.output


def test_a_customer_without_repeat_purchases_is_alive_for_sure_and_more_history_means_more_purchases() -> None:
    model = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    assert model.p_alive(np.array([0.0]), np.array([0.0]), np.array([30.0]))[0] == 1.0
    few, many = model.expected_purchases(10, np.array([1.0, 5.0]), np.array([20.0, 20.0]), np.array([30.0, 30.0]))
    assert many > few > 0
    recent, stale = model.p_alive(np.array([3.0, 3.0]), np.array([29.0, 5.0]), np.array([30.0, 30.0]))
    assert recent > stale


def test_fitting_100000_customers_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(7)
    n, T = 100_000, 52.0
    lam = rng.gamma(0.5, 1 / 5.0, n)  # r=0.5, alpha=5
    p = rng.beta(1.0, 4.0, n)  # a=1, b=4
    x = np.zeros(n)
    t_x = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        t = t + rng.exponential(1 / np.maximum(lam, 1e-9))
        buying = alive & (t < T)
        x[buying] += 1
        t_x[buying] = t[buying]
        alive = buying & (rng.random(n) >= p)
    fit = fit_bgnbd(x, t_x, np.full(n, T))
    assert fit.r == pytest.approx(0.5, rel=0.1) and fit.alpha == pytest.approx(5.0, rel=0.15)
    assert fit.a == pytest.approx(1.0, rel=0.2) and fit.b == pytest.approx(4.0, rel=0.25)
