"""Outcome tests for the EBS usage forecaster (standard library only, deterministic)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Callable

import pytest

from functions.ebs_quota import forecast as fcmod

START = dt.date(2024, 1, 1)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def series(n: int, f: Callable[[int], float]) -> list[tuple[dt.date, float]]:
    return [(day(i), f(i)) for i in range(n)]


def assert_consistent(fc: fcmod.Forecast, horizon: int) -> None:
    assert len(fc.path) == horizon
    assert [d for d, _ in fc.path] == [
        fc.last_date + dt.timedelta(days=h + 1) for h in range(horizon)
    ]
    assert fc.horizon_date == fc.last_date + dt.timedelta(days=horizon)
    for (_, lo), (_, mid), (_, hi) in zip(fc.path_lower, fc.path, fc.path_upper, strict=True):
        assert 0.0 <= lo <= mid <= hi
    assert 0.0 <= fc.lower <= fc.projected <= fc.upper


def test_linear_growth_is_forecast_within_a_few_percent() -> None:
    rng = random.Random(1)
    points = series(120, lambda i: 500.0 + 3.0 * i + rng.gauss(0.0, 2.0))
    fc = fcmod.forecast(points, 30)
    truth = 500.0 + 3.0 * 149
    assert fc.projected == pytest.approx(truth, rel=0.03)
    assert fc.lower <= truth <= fc.upper
    assert fc.method == "damped_holt"
    assert_consistent(fc, 30)


def test_flat_series_forecasts_flat() -> None:
    rng = random.Random(2)
    points = series(90, lambda i: 1000.0 + rng.gauss(0.0, 5.0))
    fc = fcmod.forecast(points, 30)
    values = [v for _, v in fc.path]
    assert fc.projected == pytest.approx(1000.0, rel=0.01)
    assert max(values) - min(values) < 10.0
    assert fc.lower < 1000.0 < fc.upper


def test_step_up_forecasts_from_the_new_level() -> None:
    rng = random.Random(3)
    points = series(100, lambda i: 1000.0 + i + (500.0 if i >= 80 else 0.0) + rng.gauss(0, 5))
    fc = fcmod.forecast(points, 30)
    assert fc.method == "damped_holt+level_shift"
    assert fc.level_shift is not None
    assert fc.level_shift[0] == day(80)
    assert fc.level_shift[1] == pytest.approx(500.0, rel=0.1)
    assert fc.projected == pytest.approx(1500.0 + 129.0, rel=0.03)
    assert fc.lower <= 1629.0 <= fc.upper


def test_step_down_deletion_keeps_the_prior_growth_from_the_new_level() -> None:
    rng = random.Random(4)
    points = series(
        120, lambda i: (6000.0 + 10.0 * i) * (0.6 if i >= 100 else 1.0) + rng.gauss(0, 10)
    )
    fc = fcmod.forecast(points, 30)
    truth = (6000.0 + 10.0 * 149) * 0.6
    assert fc.level_shift is not None
    assert fc.level_shift[1] < 0
    assert fc.projected == pytest.approx(truth, rel=0.05)


def test_one_day_spike_is_an_outlier_not_a_level_shift() -> None:
    rng = random.Random(5)
    points = series(60, lambda i: 1000.0 + i + rng.gauss(0.0, 3.0))
    points[40] = (day(40), 5000.0)
    fc = fcmod.forecast(points, 30)
    assert fc.outliers == [day(40)]
    assert fc.level_shift is None
    assert fc.projected == pytest.approx(1089.0, rel=0.02)
    assert fc.upper - fc.lower < 100.0


def test_recurring_bursts_are_growth_not_level_shifts() -> None:
    points = series(120, lambda i: 50.0 + 5.0 * (i // 7))
    fc = fcmod.forecast(points, 30)
    assert fc.level_shift is None
    assert fc.projected == pytest.approx(50.0 + 5.0 * (149 // 7), rel=0.05)


def test_steep_decline_never_goes_negative() -> None:
    rng = random.Random(6)
    points = series(48, lambda i: max(0.0, 1000.0 - 20.0 * i + rng.gauss(0.0, 5.0)))
    fc = fcmod.forecast(points, 60, threshold=800.0)
    assert fc.projected == 0.0
    assert all(v >= 0.0 for _, v in fc.path + fc.path_lower + fc.path_upper)
    assert fc.crossing_date is None
    assert_consistent(fc, 60)


def test_deletion_to_zero_stays_non_negative() -> None:
    points = series(50, lambda i: 1000.0 + 5.0 * i) + [(day(i), 0.0) for i in range(50, 60)]
    fc = fcmod.forecast(points, 30)
    assert 0.0 <= fc.lower <= fc.projected < 100.0
    assert_consistent(fc, 30)


@pytest.mark.parametrize("kind", ["trend_plus_noise", "random_walk_with_drift"])
def test_interval_contains_the_truth_most_of_the_time(kind: str) -> None:
    rng = random.Random(42)
    n, h, runs = 120, 30, 40
    hits = 0
    widths: list[float] = []
    for _ in range(runs):
        if kind == "trend_plus_noise":
            y = [800.0 + 4.0 * i + rng.gauss(0.0, 15.0) for i in range(n + h)]
        else:
            y = [2000.0]
            for _ in range(n + h - 1):
                y.append(y[-1] + 3.0 + rng.gauss(0.0, 10.0))
        fc = fcmod.forecast([(day(i), y[i]) for i in range(n)], h, confidence=0.9)
        hits += fc.lower <= y[-1] <= fc.upper
        widths.append((fc.upper - fc.lower) / y[-1])
    assert hits / runs >= 0.75
    assert sum(widths) / runs < 0.2


@pytest.mark.parametrize(
    ("values", "method"),
    [
        ([500.0], "flat_single_point"),
        ([100.0, 110.0], "damped_drift_short_history"),
        ([100.0, 110.0, 118.0], "damped_drift_short_history"),
    ],
)
def test_short_histories(values: list[float], method: str) -> None:
    points = [(day(i), v) for i, v in enumerate(values)]
    fc = fcmod.forecast(points, 30, threshold=10_000.0)
    assert fc.method == method
    assert fc.n_obs == len(values)
    assert_consistent(fc, 30)
    assert fc.lower < fc.projected < fc.upper
    if len(values) == 1:
        assert fc.projected == 500.0
        assert (fc.upper - fc.lower) / 500.0 > 0.5
    else:
        assert values[-1] < fc.projected < values[-1] + 30 * (values[-1] - values[-2])
    assert fc.crossing_date is None


def test_crossing_date_of_a_linear_series_is_exact() -> None:
    points = series(60, lambda i: 100.0 + 2.0 * i)
    fc = fcmod.forecast(points, 60, threshold=250.0)
    expected = day(75)
    assert fc.crossing_date is not None
    assert abs((fc.crossing_date - expected).days) <= 1
    assert fc.crossing_date_upper is not None
    assert fc.crossing_date_upper <= fc.crossing_date


def test_crossing_date_upper_comes_first_on_a_noisy_series() -> None:
    rng = random.Random(7)
    points = series(90, lambda i: 1000.0 + 5.0 * i + rng.gauss(0.0, 20.0))
    fc = fcmod.forecast(points, 60, threshold=1000.0 + 5.0 * 130)
    assert fc.crossing_date is not None
    assert fc.crossing_date_upper is not None
    assert abs((fc.crossing_date - day(130)).days) <= 4
    assert fc.crossing_date_upper < fc.crossing_date


def test_crossing_date_edge_cases() -> None:
    points = series(30, lambda i: 100.0 + i)
    assert fcmod.forecast(points, 30).crossing_date is None
    assert fcmod.forecast(points, 30, threshold=1e6).crossing_date is None
    already = fcmod.forecast(points, 30, threshold=50.0)
    assert already.crossing_date == already.last_date == day(29)
    assert already.crossing_date_upper == day(29)


def test_gaps_in_dates_are_handled() -> None:
    rng = random.Random(8)
    kept = [i for i in range(120) if rng.random() > 0.3 or i == 119]
    points = [(day(i), 500.0 + 3.0 * i + rng.gauss(0.0, 2.0)) for i in kept]
    points.reverse()
    fc = fcmod.forecast(points, 30)
    assert fc.last_date == day(119)
    assert fc.n_obs == len(kept)
    assert fc.projected == pytest.approx(500.0 + 3.0 * 149, rel=0.02)
    assert fc.lower <= 500.0 + 3.0 * 149 <= fc.upper
    assert_consistent(fc, 30)


def test_a_long_gap_is_bridged() -> None:
    points = series(30, lambda i: 500.0 + 3.0 * i) + [
        (day(i), 500.0 + 3.0 * i) for i in range(60, 70)
    ]
    fc = fcmod.forecast(points, 30)
    assert fc.projected == pytest.approx(500.0 + 3.0 * 99, rel=0.01)
    assert fc.level_shift is None


def test_horizon_zero_returns_the_last_value() -> None:
    fc = fcmod.forecast(series(20, lambda i: 100.0 + i), 0)
    assert fc.path == []
    assert fc.horizon_date == fc.last_date
    assert fc.projected == fc.lower == fc.upper == 119.0


def test_params_are_within_their_bounds() -> None:
    rng = random.Random(9)
    fc = fcmod.forecast(series(200, lambda i: 300.0 + i + rng.gauss(0.0, 4.0)), 30)
    alpha, beta, phi, sigma = (fc.params[k] for k in ("alpha", "beta", "phi", "sigma"))
    assert alpha is not None
    assert beta is not None
    assert phi is not None
    assert 0.0 < alpha <= 1.0
    assert 0.0 <= beta <= 1.0
    assert 0.8 <= phi <= 1.0
    assert sigma == pytest.approx(4.0, rel=0.3)


@pytest.mark.parametrize(
    ("points", "horizon", "kwargs", "message"),
    [
        ([], 30, {}, "empty"),
        ([(day(0), 1.0), (day(1), math.nan)], 30, {}, "not finite"),
        ([(day(0), 1.0), (day(1), math.inf)], 30, {}, "not finite"),
        ([(day(0), 1.0)], -1, {}, "horizon_days"),
        ([(day(0), 1.0), (day(1), 2.0), (day(0), 3.0)], 30, {}, "duplicate"),
        ([(day(0), -1.0)], 30, {}, "negative"),
        ([(day(0), "abc")], 30, {}, "not a number"),
        ([(day(0),)], 30, {}, "pair"),
        ([(day(0), 1.0)], 30, {"confidence": 1.0}, "confidence"),
        ([(day(0), 1.0)], 30, {"threshold": math.nan}, "threshold"),
    ],
)
def test_bad_inputs_raise_value_error(
    points: list[tuple[dt.date, float]], horizon: int, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fcmod.forecast(points, horizon, **kwargs)


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        fcmod.forecast([("2024-01-01", 1.0)], 30)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        fcmod.forecast([(day(0), 1.0)], 30.0)  # type: ignore[arg-type]


def test_to_dict_round_trips_through_json() -> None:
    points = series(40, lambda i: 100.0 + 2.0 * i)
    points[30] = (day(30), 400.0)
    fc = fcmod.forecast(points, 10, threshold=150.0)
    data = fc.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["last_date"] == "2024-02-09"
    assert data["horizon_date"] == "2024-02-19"
    assert data["path"][0] == ["2024-02-10", pytest.approx(fc.path[0][1])]
    assert data["outliers"] == ["2024-01-31"]
    assert set(data["params"]) >= {"alpha", "beta", "phi", "sigma"}


def test_ascii_chart_shape_and_threshold_marker() -> None:
    points = series(60, lambda i: 100.0 + 2.0 * i)
    fc = fcmod.forecast(points, 30, threshold=250.0)
    chart = fcmod.ascii_chart(points, fc, width=50, height=10)
    lines = chart.splitlines()
    assert len(lines) == 10 + 3
    plot = lines[:10]
    assert any("=" in line for line in plot)
    assert sum(line.count("*") for line in plot) > 0
    assert sum(line.count("o") for line in plot) > 0
    assert all(len(line) == 12 + 50 for line in lines[:11])
    assert "2024-01-01" in lines[11]
    assert "threshold 250" in lines[12]

    plain = fcmod.ascii_chart(points, fcmod.forecast(points, 30), width=50, height=10)
    assert len(plain.splitlines()) == 13
    assert not any("=" in line for line in plain.splitlines()[:10])
