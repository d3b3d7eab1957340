"""Forecast daily EBS usage and the day it crosses a threshold, with the standard library only.

Method
------
Damped-trend exponential smoothing: Holt's linear method with a damping factor (Gardner &
McKenzie, 1985), written in error-correction form. For an observation ``y`` on day ``t``::

    f   = l + phi * b                # one-step-ahead forecast
    e   = y - f                      # one-step-ahead error
    l   = f + alpha * e              # level
    b   = phi * b + alpha * beta * e  # trend (beta is Holt's trend smoothing parameter)

and the forecast ``h`` days after the last observation is
``l + (phi + phi**2 + ... + phi**h) * b``. With ``phi < 1`` the trend flattens out over the
horizon; ``phi = 1`` is Holt's undamped linear method. Damping is a sound default for capacity
forecasting: it is consistently among the most accurate simple methods on business series
(Gardner & McKenzie 1985; the M3 competition, Makridakis & Hibon 2000) and it does not extrapolate
a short burst of growth linearly for months.

Parameters are chosen by minimising the sum of squared one-step-ahead errors: a coarse grid over
``alpha`` in (0, 1], ``beta`` in [0, 1] and ``phi`` in [0.8, 1] (the range recommended by Hyndman
et al., 2008), refined by a deterministic compass (pattern) search. The initial level and trend are
the intercept and slope of a least-squares line through the first ten observations (Hyndman's
heuristic); they are not optimised.

Prediction intervals
--------------------
The model is read as the single-source-of-error state-space model ETS(A,Ad,N) with Gaussian errors.
The variance of the ``h``-step forecast error is ``sigma**2 * v_h`` with the exact multipliers
``v_h = 1 + sum_{j=1}^{h-1} (alpha + alpha * beta * phi_j)**2`` where
``phi_j = phi + ... + phi**j`` (Hyndman et al., 2008, chapter 6, class 1 models).
``sigma**2`` is the mean squared one-step error with three degrees of freedom removed for the
parameters. The interval is the central ``confidence`` interval of the normal distribution. It
ignores the uncertainty of the estimated parameters, so on short or misspecified series (curved
growth, strong weekly cycles) it is too narrow; the back-test in ``bench/forecast_backtest.py``
reports the empirical coverage.

Gaps
----
The input is a list of ``(date, value)`` pairs that may skip days; no value is invented. On a
missing day the state is propagated without an update (the expected error is zero), so the error
at the next observation is a ``k``-step error. It is divided by the multiplier ``v_k`` in the
objective and in ``sigma**2``. Using the ordinary ``alpha`` and ``beta`` after a gap is the usual
approximation (an exact treatment would use gap-dependent smoothing constants, Wright 1986).

Jumps, outliers and level shifts
--------------------------------
Usage moves in steps when a fleet is launched or snapshots are purged, and a collection run can
glitch for a day. Smoothing alone would read a step as a steep trend for weeks, and a glitch
inflates ``sigma``. With at least ``MIN_FIT_POINTS`` observations a simple robust rule is applied
before fitting:

* day-to-day changes are compared with their median (the typical drift); the robust scale is the
  larger of 1.4826 * MAD and the 90th percentile of the absolute deviations divided by 1.645, so
  that series that normally move in bursts are not flagged; a change across a gap of ``k`` days is
  divided by ``sqrt(k)``;
* a change is a jump when it exceeds ``SHIFT_Z`` robust scales and ``SHIFT_MIN_REL`` of the
  level;
* an isolated outlier is an observation (not the first or the last) reached by a jump and left by
  a jump of the opposite sign while its two neighbours agree with each other; it is replaced by
  linear interpolation between them and reported in ``Forecast.outliers``;
* a jump is a level shift if it persists: the median level over the following days (up to a
  week), corrected for drift, differs from the median level over the preceding week by at least
  half of the jump, with the same sign. A one-day spike fails this test. A jump on the very last
  day cannot be confirmed and is taken at face value, since the input counts real resources;
* if three or more persistent jumps are found, jumps are how this series normally grows and no
  adjustment is made.

When a shift is retained (``Forecast.level_shift``), every observation before it is moved by the
size of the shift (an intervention adjustment, as in Box & Tiao 1975) and the model is fitted on
the whole adjusted history. The forecast therefore starts from the new level and keeps the trend
learned before the break, which fitting on the few points after the break could not estimate.

Short histories
---------------
* 1 observation: flat forecast; the interval uses an assumed daily standard deviation of
  ``SINGLE_POINT_REL_SIGMA * max(value, 1)``, growing with the square root of the horizon, i.e.
  deliberately wide (about +-45% of the value at 30 days and 90%).
* 2 to ``MIN_FIT_POINTS - 1`` observations: damped drift. The slope is the least-squares slope
  per day (for two points, the line through them), damped with ``SHORT_PHI``, starting from the
  last value. The variance at ``h`` days is ``s**2 * h + (phi_h * se_b)**2``: ``s`` is the
  residual standard deviation of the line, at least ``SHORT_REL_SIGMA * max(last value, 1)``;
  ``se_b`` is the standard error of the slope, at least ``SHORT_MIN_SLOPE_REL`` times the slope,
  and the whole slope for two points.
* From ``MIN_FIT_POINTS`` observations on, the fitted damped trend model is used.

Output
------
No forecast, bound or path value is ever negative: usage cannot be. ``crossing_date`` is the first
date from the last observation up to the horizon on which the value (observed on the last date,
point forecast afterwards) reaches the threshold; it equals ``last_date`` when the threshold is
already reached. ``crossing_date_upper`` uses the upper bound instead, the cautious date on which to
act.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import NormalDist, median
from typing import Any

__all__ = ["Forecast", "ascii_chart", "forecast"]

MIN_FIT_POINTS = 6
INIT_POINTS = 10
SINGLE_POINT_REL_SIGMA = 0.05
SHORT_REL_SIGMA = 0.01
SHORT_MIN_SLOPE_REL = 0.25
SHORT_PHI = 0.98
SHIFT_Z = 6.0
SHIFT_MIN_REL = 0.02
SHIFT_WINDOW = 7
SHIFT_MAX_RECURRING = 3

ALPHA_BOUNDS = (0.01, 1.0)
BETA_BOUNDS = (0.0, 1.0)
PHI_BOUNDS = (0.8, 1.0)
_ALPHA_GRID = (0.05, 0.15, 0.3, 0.5, 0.7, 0.9, 1.0)
_BETA_GRID = (0.0, 0.05, 0.15, 0.3, 0.6)
_PHI_GRID = (0.8, 0.9, 0.95, 0.98, 1.0)
_SEARCH_STEPS = (0.1, 0.1, 0.02)
_SEARCH_TOL = (0.005, 0.005, 0.0025)
_MAX_SEARCH_EVALS = 150

_METHOD_DAMPED = "damped_holt"
_METHOD_DAMPED_SHIFT = "damped_holt+level_shift"
_METHOD_DRIFT = "damped_drift_short_history"
_METHOD_FLAT = "flat_single_point"


@dataclass(frozen=True)
class Forecast:
    """A usage forecast at ``horizon_date`` and, optionally, when it crosses ``threshold``."""

    method: str
    last_date: dt.date
    last_value: float
    horizon_date: dt.date
    projected: float
    lower: float
    upper: float
    crossing_date: dt.date | None
    crossing_date_upper: dt.date | None
    path: list[tuple[dt.date, float]]
    params: dict[str, float | None]
    path_lower: list[tuple[dt.date, float]] = field(default_factory=list)
    path_upper: list[tuple[dt.date, float]] = field(default_factory=list)
    threshold: float | None = None
    confidence: float = 0.9
    n_obs: int = 0
    level_shift: tuple[dt.date, float] | None = None
    outliers: list[dt.date] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; dates are ISO strings, paths are [date, value] pairs."""

        def iso(d: dt.date | None) -> str | None:
            return None if d is None else d.isoformat()

        def pairs(rows: list[tuple[dt.date, float]]) -> list[list[Any]]:
            return [[d.isoformat(), v] for d, v in rows]

        return {
            "method": self.method,
            "last_date": iso(self.last_date),
            "last_value": self.last_value,
            "horizon_date": iso(self.horizon_date),
            "projected": self.projected,
            "lower": self.lower,
            "upper": self.upper,
            "crossing_date": iso(self.crossing_date),
            "crossing_date_upper": iso(self.crossing_date_upper),
            "threshold": self.threshold,
            "confidence": self.confidence,
            "n_obs": self.n_obs,
            "level_shift": (
                None
                if self.level_shift is None
                else {"date": self.level_shift[0].isoformat(), "size": self.level_shift[1]}
            ),
            "outliers": [d.isoformat() for d in self.outliers],
            "params": dict(self.params),
            "path": pairs(self.path),
            "path_lower": pairs(self.path_lower),
            "path_upper": pairs(self.path_upper),
        }


@dataclass(frozen=True)
class _Model:
    """Point forecasts and standard deviations for h = 1..horizon days after the last date."""

    method: str
    means: list[float]
    sds: list[float]
    params: dict[str, float | None]
    level_shift: tuple[int, float] | None = None
    outliers: list[int] = field(default_factory=list)


def forecast(
    points: Sequence[tuple[dt.date, float]],
    horizon_days: int,
    threshold: float | None = None,
    confidence: float = 0.9,
) -> Forecast:
    """Forecast usage ``horizon_days`` days after the last observation.

    ``points`` are ``(date, value)`` pairs in any order; days may be missing. Values must be
    finite and non-negative, dates unique. ``confidence`` is the coverage of the central
    prediction interval. Raises ``ValueError`` for invalid input and ``TypeError`` for values of
    the wrong type.
    """
    dates, values = _validate(points, horizon_days, threshold, confidence)
    days = [(d - dates[0]).days for d in dates]
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n = len(values)

    if n == 1:
        model = _flat_model(values[0], horizon_days)
    elif n < MIN_FIT_POINTS:
        model = _drift_model(days, values, horizon_days)
    else:
        model = _damped_model(days, values, horizon_days)

    last_date, last_value = dates[-1], values[-1]
    path: list[tuple[dt.date, float]] = []
    path_lower: list[tuple[dt.date, float]] = []
    path_upper: list[tuple[dt.date, float]] = []
    for h, (mean, sd) in enumerate(zip(model.means, model.sds, strict=True), start=1):
        day = last_date + dt.timedelta(days=h)
        path.append((day, max(0.0, mean)))
        path_lower.append((day, max(0.0, mean - z * sd)))
        path_upper.append((day, max(0.0, mean + z * sd)))

    if path:
        projected, lower, upper = path[-1][1], path_lower[-1][1], path_upper[-1][1]
    else:
        projected = lower = upper = last_value

    level_shift = None
    if model.level_shift is not None:
        index, size = model.level_shift
        level_shift = (dates[index], size)

    return Forecast(
        method=model.method,
        last_date=last_date,
        last_value=last_value,
        horizon_date=last_date + dt.timedelta(days=horizon_days),
        projected=projected,
        lower=lower,
        upper=upper,
        crossing_date=_crossing(last_date, last_value, path, threshold),
        crossing_date_upper=_crossing(last_date, last_value, path_upper, threshold),
        path=path,
        params=model.params,
        path_lower=path_lower,
        path_upper=path_upper,
        threshold=None if threshold is None else float(threshold),
        confidence=float(confidence),
        n_obs=n,
        level_shift=level_shift,
        outliers=[dates[i] for i in model.outliers],
    )


def _validate(
    points: Sequence[tuple[dt.date, float]],
    horizon_days: int,
    threshold: float | None,
    confidence: float,
) -> tuple[list[dt.date], list[float]]:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int):
        raise TypeError(f"horizon_days must be an int, got {type(horizon_days).__name__}")
    if horizon_days < 0:
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
    if not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if threshold is not None:
        try:
            limit = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number or None, got {threshold!r}") from None
        if not math.isfinite(limit):
            raise ValueError(f"threshold must be finite, got {threshold!r}")

    rows: list[tuple[dt.date, float]] = []
    for position, point in enumerate(points):
        try:
            day, raw = point
        except (TypeError, ValueError):
            raise ValueError(f"point {position} is not a (date, value) pair: {point!r}") from None
        if isinstance(day, dt.datetime):
            day = day.date()
        elif not isinstance(day, dt.date):
            raise TypeError(f"point {position}: date must be a datetime.date, got {day!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"point {position}: value is not a number: {raw!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"point {position} ({day.isoformat()}): value is not finite: {raw!r}")
        if value < 0:
            raise ValueError(f"point {position} ({day.isoformat()}): usage cannot be negative")
        rows.append((day, value))
    if not rows:
        raise ValueError("points is empty: at least one (date, value) observation is required")

    rows.sort(key=lambda row: row[0])
    duplicates = sorted({a[0] for a, b in pairwise(rows) if a[0] == b[0]})
    if duplicates:
        listed = ", ".join(d.isoformat() for d in duplicates[:5])
        raise ValueError(f"duplicate dates in points: {listed}")
    return [d for d, _ in rows], [v for _, v in rows]


def _crossing(
    last_date: dt.date,
    last_value: float,
    path: list[tuple[dt.date, float]],
    threshold: float | None,
) -> dt.date | None:
    if threshold is None:
        return None
    if last_value >= threshold:
        return last_date
    for day, value in path:
        if value >= threshold:
            return day
    return None


def _phi_sum(phi: float, h: int) -> float:
    """phi + phi**2 + ... + phi**h (0 for h <= 0)."""
    if h <= 0:
        return 0.0
    if phi >= 1.0:
        return float(h)
    return phi * (1.0 - phi**h) / (1.0 - phi)


def _variance_multipliers(alpha: float, beta: float, phi: float, horizon: int) -> list[float]:
    """v_1..v_horizon for ETS(A,Ad,N): v_h = 1 + sum_{j<h} (alpha + alpha*beta*phi_j)**2."""
    out: list[float] = []
    total = 1.0
    phi_j = 0.0
    power = 1.0
    for _ in range(horizon):
        out.append(total)
        power *= phi
        phi_j += power
        c = alpha + alpha * beta * phi_j
        total += c * c
    return out


def _flat_model(value: float, horizon: int) -> _Model:
    sigma = SINGLE_POINT_REL_SIGMA * max(abs(value), 1.0)
    return _Model(
        method=_METHOD_FLAT,
        means=[value] * horizon,
        sds=[sigma * math.sqrt(h) for h in range(1, horizon + 1)],
        params={
            "alpha": None,
            "beta": None,
            "phi": None,
            "sigma": sigma,
            "level": value,
            "trend": 0.0,
            "trend_se": None,
            "sse": None,
        },
    )


def _drift_model(days: list[int], values: list[float], horizon: int) -> _Model:
    n = len(values)
    slope, intercept = _least_squares(days, values)
    t_mean = sum(days) / n
    sxx = sum((t - t_mean) ** 2 for t in days)
    floor = SHORT_REL_SIGMA * max(abs(values[-1]), 1.0)
    if n > 2:
        resid = [y - (intercept + slope * t) for t, y in zip(days, values, strict=True)]
        s = math.sqrt(sum(r * r for r in resid) / (n - 2))
        slope_se = max(s / math.sqrt(sxx), SHORT_MIN_SLOPE_REL * abs(slope))
    else:
        s = 0.0
        slope_se = abs(slope)
    sigma = max(s, floor)
    level = values[-1]
    means = [level + _phi_sum(SHORT_PHI, h) * slope for h in range(1, horizon + 1)]
    sds = [
        math.sqrt(sigma * sigma * h + (_phi_sum(SHORT_PHI, h) * slope_se) ** 2)
        for h in range(1, horizon + 1)
    ]
    return _Model(
        method=_METHOD_DRIFT,
        means=means,
        sds=sds,
        params={
            "alpha": None,
            "beta": None,
            "phi": SHORT_PHI,
            "sigma": sigma,
            "level": level,
            "trend": slope,
            "trend_se": slope_se,
            "sse": None,
        },
    )


def _least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line; slope 0 when all x are equal."""
    n = len(xs)
    x_mean = sum(xs) / n
    y_mean = sum(ys) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx == 0.0:
        return 0.0, y_mean
    sxy = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return slope, y_mean - slope * x_mean


def _damped_model(days: list[int], values: list[float], horizon: int) -> _Model:
    adjusted = _robust_adjust(days, values)
    series = adjusted.values
    shift = adjusted.shift

    init_n = min(len(series), INIT_POINTS)
    trend0, level0 = _least_squares(days[:init_n], series[:init_n])
    steps = [b - a for a, b in pairwise(days)]
    objective = _Objective(series, steps, level0, trend0)
    alpha, beta, phi = _optimise(objective)
    sse, level, trend, n_errors = objective.run(alpha, beta, phi)
    sigma = math.sqrt(sse / max(n_errors - 3, 1))

    multipliers = _variance_multipliers(alpha, beta, phi, horizon)
    means = [level + _phi_sum(phi, h) * trend for h in range(1, horizon + 1)]
    sds = [sigma * math.sqrt(v) for v in multipliers]
    return _Model(
        method=_METHOD_DAMPED if shift is None else _METHOD_DAMPED_SHIFT,
        means=means,
        sds=sds,
        params={
            "alpha": alpha,
            "beta": beta,
            "phi": phi,
            "sigma": sigma,
            "level": level,
            "trend": trend,
            "trend_se": None,
            "sse": sse,
        },
        level_shift=shift,
        outliers=adjusted.outliers,
    )


class _Objective:
    """Weighted sum of squared one-step-ahead errors of the damped trend recursions."""

    def __init__(self, y: list[float], steps: list[int], level0: float, trend0: float) -> None:
        self.y = y
        self.steps = steps
        self.level0 = level0
        self.trend0 = trend0
        self.regular = all(step == 1 for step in steps)
        self.evaluations = 0

    def __call__(self, alpha: float, beta: float, phi: float) -> float:
        return self.run(alpha, beta, phi)[0]

    def run(self, alpha: float, beta: float, phi: float) -> tuple[float, float, float, int]:
        """Return (weighted SSE, final level, final trend, number of errors)."""
        self.evaluations += 1
        beta_star = alpha * beta
        level, trend = self.level0, self.trend0
        sse = 0.0
        if self.regular:
            for y in self.y[1:]:
                fitted = level + phi * trend
                error = y - fitted
                sse += error * error
                level = fitted + alpha * error
                trend = phi * trend + beta_star * error
            return sse, level, trend, len(self.y) - 1

        multipliers: dict[int, float] = {}
        for y, step in zip(self.y[1:], self.steps, strict=True):
            if step == 1:
                fitted = level + phi * trend
                weight = 1.0
            else:
                if step not in multipliers:
                    multipliers[step] = _variance_multipliers(alpha, beta, phi, step)[-1]
                weight = multipliers[step]
                for _ in range(step - 1):
                    level += phi * trend
                    trend *= phi
                fitted = level + phi * trend
            error = y - fitted
            sse += error * error / weight
            level = fitted + alpha * error
            trend = phi * trend + beta_star * error
        return sse, level, trend, len(self.y) - 1


def _optimise(objective: _Objective) -> tuple[float, float, float]:
    """Coarse grid, then compass search within the bounds; deterministic."""
    best_value = math.inf
    best = (_ALPHA_GRID[0], _BETA_GRID[0], _PHI_GRID[0])
    for phi in _PHI_GRID:
        for alpha in _ALPHA_GRID:
            for beta in _BETA_GRID:
                value = objective(alpha, beta, phi)
                if value < best_value:
                    best_value, best = value, (alpha, beta, phi)

    bounds = (ALPHA_BOUNDS, BETA_BOUNDS, PHI_BOUNDS)
    steps = list(_SEARCH_STEPS)
    point = list(best)
    evaluations = 0
    while evaluations < _MAX_SEARCH_EVALS and any(
        s >= tol for s, tol in zip(steps, _SEARCH_TOL, strict=True)
    ):
        improved = False
        for dim in range(3):
            if steps[dim] < _SEARCH_TOL[dim]:
                continue
            for sign in (1.0, -1.0):
                low, high = bounds[dim]
                trial = list(point)
                trial[dim] = min(high, max(low, point[dim] + sign * steps[dim]))
                if trial[dim] == point[dim]:
                    continue
                value = objective(trial[0], trial[1], trial[2])
                evaluations += 1
                if value < best_value:
                    best_value, point, improved = value, trial, True
                    break
        if not improved:
            steps = [s / 2.0 for s in steps]
    return point[0], point[1], point[2]


@dataclass(frozen=True)
class _Adjusted:
    values: list[float]
    outliers: list[int]
    shift: tuple[int, float] | None


def _robust_adjust(days: list[int], values: list[float]) -> _Adjusted:
    """Replace isolated one-day outliers and remove the most recent persistent level shift.

    ``shift`` is (index of the first observation at the new level, size of the shift); the
    returned values already have the observations before that index moved by the size.
    """
    n = len(values)
    if n < MIN_FIT_POINTS:
        return _Adjusted(list(values), [], None)
    gaps = [b - a for a, b in pairwise(days)]
    drift = median((b - a) / g for (a, b), g in zip(pairwise(values), gaps, strict=True))
    scaled = [
        (b - a - drift * g) / math.sqrt(g) for (a, b), g in zip(pairwise(values), gaps, strict=True)
    ]
    centre = median(scaled)
    deviations = sorted(abs(x - centre) for x in scaled)
    mad_scale = 1.4826 * median(deviations)
    q90_scale = deviations[int(0.9 * (len(deviations) - 1))] / 1.645
    scale = max(mad_scale, q90_scale)
    y = list(values)

    def residual(i: int, j: int) -> float:
        return y[j] - y[i] - drift * (days[j] - days[i])

    def is_jump(i: int, j: int) -> bool:
        r = residual(i, j)
        unusual = abs(r / math.sqrt(days[j] - days[i]) - centre) > SHIFT_Z * scale
        return unusual and abs(r) > SHIFT_MIN_REL * max(abs(y[i]), abs(y[j]))

    outliers: list[int] = []
    for i in range(1, n - 1):
        if (
            is_jump(i - 1, i)
            and is_jump(i, i + 1)
            and residual(i - 1, i) * residual(i, i + 1) < 0
            and not is_jump(i - 1, i + 1)
        ):
            weight = (days[i] - days[i - 1]) / (days[i + 1] - days[i - 1])
            y[i] = y[i - 1] + weight * (y[i + 1] - y[i - 1])
            outliers.append(i)

    shifts: list[tuple[int, float]] = []
    for i in range(1, n):
        if not is_jump(i - 1, i):
            continue
        jump = residual(i - 1, i)
        before = range(max(0, i - SHIFT_WINDOW), i)
        after = range(i, min(n, i + SHIFT_WINDOW))
        pre = median(y[j] + drift * (days[i] - days[j]) for j in before)
        post = median(y[j] - drift * (days[j] - days[i]) for j in after)
        size = post - pre
        if size * jump > 0 and abs(size) >= 0.5 * abs(jump):
            shifts.append((i, size))
    if not shifts or len(shifts) >= SHIFT_MAX_RECURRING:
        return _Adjusted(y, outliers, None)
    index, size = shifts[-1]
    for j in range(index):
        y[j] += size
    return _Adjusted(y, outliers, (index, size))


def ascii_chart(
    history: Sequence[tuple[dt.date, float]],
    fc: Forecast,
    width: int = 60,
    height: int = 12,
    threshold: float | None = None,
) -> str:
    """Draw the history, the forecast path with its interval and the threshold as ASCII art.

    The chart has ``height + 3`` lines: ``height`` plot rows, an axis row (``+`` marks the last
    observation), a row with the first, last-observed and horizon dates, and a legend. Marks:
    ``*`` history, ``o`` forecast, ``:`` prediction interval, ``=`` threshold (``threshold`` or,
    when None, ``fc.threshold``). Each plot row is a 12-character value gutter plus ``width``
    columns.
    """
    if width < 20 or height < 3:
        raise ValueError("ascii_chart needs width >= 20 and height >= 3")
    limit = fc.threshold if threshold is None else float(threshold)
    hist = sorted(((d.date() if isinstance(d, dt.datetime) else d), float(v)) for d, v in history)
    start = hist[0][0] if hist else fc.last_date
    end = max(fc.horizon_date, start + dt.timedelta(days=1))
    span = (end - start).days

    def column(day: dt.date) -> int:
        return min(width - 1, max(0, round((day - start).days * (width - 1) / span)))

    candidates = [v for _, v in hist] + [v for _, v in fc.path_lower] + [fc.last_value]
    candidates += [v for _, v in fc.path_upper] + [v for _, v in fc.path]
    if limit is not None:
        candidates.append(limit)
    low, high = min(candidates), max(candidates)
    if high - low < 1e-12 * max(1.0, abs(high)):
        low, high = low - max(1.0, abs(low) * 0.1), high + max(1.0, abs(high) * 0.1)
        low = max(0.0, low) if min(candidates) >= 0 else low

    def row(value: float) -> int:
        return min(height - 1, max(0, round((high - value) * (height - 1) / (high - low))))

    grid = [[" "] * width for _ in range(height)]
    lows: dict[int, float] = {}
    highs: dict[int, float] = {}
    for (day, lo), (_, hi) in zip(fc.path_lower, fc.path_upper, strict=True):
        c = column(day)
        lows[c] = min(lows.get(c, math.inf), lo)
        highs[c] = max(highs.get(c, -math.inf), hi)
    for c, lo in lows.items():
        for r in range(row(highs[c]), row(lo) + 1):
            grid[r][c] = ":"
    if limit is not None:
        r = row(limit)
        grid[r] = ["=" if ch in " :" else ch for ch in grid[r]]
    forecast_cols: dict[int, float] = {}
    for day, value in fc.path:
        forecast_cols[column(day)] = value
    for c, value in forecast_cols.items():
        grid[row(value)][c] = "o"
    buckets: dict[int, list[float]] = {}
    for day, value in hist:
        buckets.setdefault(column(day), []).append(value)
    for c, bucket in buckets.items():
        grid[row(sum(bucket) / len(bucket))][c] = "*"

    label_rows = {0: high, (height - 1) // 2: (high + low) / 2.0, height - 1: low}
    lines = []
    for r, cells in enumerate(grid):
        label = f"{label_rows[r]:>10.4g}" if r in label_rows else " " * 10
        lines.append(f"{label} |{''.join(cells)}")
    axis = ["-"] * width
    axis[column(fc.last_date)] = "+"
    lines.append(" " * 10 + " +" + "".join(axis))

    labels = [" "] * width
    first, last, final = start.isoformat(), fc.last_date.isoformat(), end.isoformat()
    labels[: len(first)] = first
    labels[width - len(final) :] = final
    mid = min(column(fc.last_date) - len(last) // 2, width - len(final) - len(last) - 1)
    if mid > len(first):
        labels[mid : mid + len(last)] = last
    lines.append(" " * 12 + "".join(labels)[:width])

    legend = f"* history  o forecast  : {fc.confidence:.0%} interval"
    if limit is not None:
        legend += f"  = threshold {limit:g}"
    lines.append(" " * 12 + legend)
    return "\n".join(lines)
