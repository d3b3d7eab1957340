"""Back-test the EBS usage forecaster on generated and real series.

Run from the repository root::

    python -m bench.forecast_backtest [--origins 10] [--horizon 30] [--window 365] [--seed N]

Every series is evaluated with rolling origins: at each origin the methods see at most
``--window`` past observations and forecast the next ``h`` steps (one step is one day; for the
real series one observation is one step). Methods:

* ``ours``: :func:`functions.ebs_quota.forecast.forecast`, the function the runbook runs;
* ``naive``: the last observed value;
* ``holt``: statsmodels damped Holt, parameters fitted by least squares
  (``statsmodels.tsa.holtwinters.Holt(damped_trend=True)``);
* ``ets``: statsmodels ETS(A,Ad,N) fitted by maximum likelihood, also the reference for the
  coverage of the prediction interval.

Errors: MAPE (percent) and MASE (mean absolute error over the ``h`` steps divided by the
in-sample mean absolute one-step change of the training window), averaged over origins and steps.
``ours/naive`` and ``ours/holt`` are MASE ratios (below 1 means ours is better). ``cov`` is the
share of actual values inside the central interval at all steps, ``cov@h`` at the last step.
``ms`` is the median wall time of one call to our forecaster on that series.

statsmodels, numpy and pandas are development dependencies used only here; the forecaster itself
needs the standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from functions.ebs_quota.forecast import forecast

START = dt.date(2024, 1, 1)


@dataclass(frozen=True)
class Series:
    """A series to back-test; indices in ``hidden`` are missing days for our forecaster."""

    name: str
    values: list[float]
    horizon: int
    hidden: frozenset[int] = field(default_factory=frozenset)


@dataclass
class Result:
    """Errors, interval coverage and timing of one series, averaged over its origins."""

    name: str
    n: int
    horizon: int
    origins: int
    mape: dict[str, float]
    mase: dict[str, float]
    coverage: dict[str, float]
    coverage_at_h: dict[str, float]
    ms: float


METHODS = ("ours", "naive", "holt", "ets")
FITS = {"fitted": 0, "read": 0}
"""Origins whose baselines this process fitted, and those read from the cache (:func:`baselines`)."""


def generated_series(seed: int, length: int = 400, horizon: int = 30) -> list[Series]:
    """Synthetic usage shapes in GiB or counts, all strictly positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=float)

    def noise(sd: float) -> np.ndarray:
        return rng.normal(0.0, sd, length)

    linear = 2000.0 + 8.0 * t + noise(25.0)
    exponential = 1500.0 * np.exp(0.004 * t) * (1.0 + noise(0.01))
    step_up = 3000.0 + 5.0 * t + noise(20.0) + np.where(t >= 300, 2500.0, 0.0)
    deletion = (6000.0 + 10.0 * t + noise(30.0)) * np.where(t >= 280, 0.6, 1.0)
    weekday = np.array([0.0, 40.0, 60.0, 60.0, 50.0, -80.0, -130.0])[(t % 7).astype(int)]
    weekly = 4000.0 + 4.0 * t + weekday + noise(30.0)
    flat = 5000.0 + noise(40.0)
    walk = np.maximum(100.0, 3000.0 + np.cumsum(rng.normal(0.5, 25.0, length)))
    bursts = 200.0 + np.cumsum(np.where(t % 7 == 6, rng.poisson(40.0, length), 0))
    bursts = bursts + rng.integers(-2, 3, length)
    gappy = 2000.0 + 6.0 * t + noise(20.0)
    hidden = frozenset(int(i) for i in np.flatnonzero(rng.random(length) < 0.25))

    shapes = {
        "linear": linear,
        "exponential": exponential,
        "step_up": step_up,
        "deletion": deletion,
        "weekly_noise": weekly,
        "flat": flat,
        "random_walk": walk,
        "bursty_counts": bursts,
    }
    out = [Series(name, [float(v) for v in y], horizon) for name, y in shapes.items()]
    out.append(Series("gaps_25pct", [float(v) for v in gappy], horizon, hidden))
    return out


def real_series(horizon: int = 30) -> list[Series]:
    """Public series shipped with statsmodels (read from the installed package, no network)."""
    from statsmodels import datasets

    co2 = datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both")
    gdp = datasets.macrodata.load_pandas().data["realgdp"]
    return [
        Series("co2_weekly (real)", [float(v) for v in co2.to_numpy()], horizon),
        Series("us_realgdp_q (real)", [float(v) for v in gdp.to_numpy()], 8),
    ]


def _origins(n: int, horizon: int, count: int, min_train: int) -> list[int]:
    first, last = min_train, n - horizon
    if last < first:
        raise ValueError(f"series of length {n} too short for horizon {horizon}")
    if count == 1:
        return [last]
    step = (last - first) / (count - 1)
    return sorted({round(first + k * step) for k in range(count)})


def _ours(
    series: Series, lo: int, origin: int, confidence: float
) -> tuple[list[float], list[float], list[float], float, float]:
    observed = [i for i in range(lo, origin) if i not in series.hidden]
    points = [(START + dt.timedelta(days=i), series.values[i]) for i in observed]
    target_end = origin + series.horizon - 1
    started = time.perf_counter()
    fc = forecast(points, target_end - observed[-1], confidence=confidence)
    elapsed = time.perf_counter() - started
    first_date = START + dt.timedelta(days=origin)
    mean = [v for d, v in fc.path if d >= first_date]
    lower = [v for d, v in fc.path_lower if d >= first_date]
    upper = [v for d, v in fc.path_upper if d >= first_date]
    return mean, lower, upper, elapsed, series.values[observed[-1]]


def _dense_training(series: Series, lo: int, origin: int) -> np.ndarray:
    """Training window for the baselines; hidden days are linearly interpolated."""
    idx = np.arange(lo, origin)
    seen = np.array([i for i in idx if i not in series.hidden])
    values = np.asarray(series.values, dtype=float)
    return np.interp(idx, seen, values[seen])


def _statsmodels(train: np.ndarray, horizon: int, confidence: float) -> dict[str, np.ndarray]:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.holtwinters import Holt

    holt = Holt(train, damped_trend=True, initialization_method="estimated").fit()
    ets = ETSModel(pd.Series(train), error="add", trend="add", damped_trend=True).fit(disp=False)
    frame = ets.get_prediction(len(train), len(train) + horizon - 1).summary_frame(
        alpha=1.0 - confidence
    )
    return {
        "holt": np.asarray(holt.forecast(horizon), dtype=float),
        "ets": frame["mean"].to_numpy(dtype=float),
        "ets_lower": frame["pi_lower"].to_numpy(dtype=float),
        "ets_upper": frame["pi_upper"].to_numpy(dtype=float),
    }


@dataclass(frozen=True)
class Origin:
    """One rolling origin of a series: its training window starts at ``lo``, and ``train`` is
    that window as the baselines see it (hidden days interpolated)."""

    origin: int
    lo: int
    train: np.ndarray


def origins_of(series: Series, origins: int, window: int, min_train: int = 90) -> list[Origin]:
    """The rolling origins of one series and their training windows."""
    n, h = len(series.values), series.horizon
    chosen = _origins(n, h, origins, min(min_train, n - h))
    return [Origin(origin, max(0, origin - window),
                   _dense_training(series, max(0, origin - window), origin))
            for origin in chosen]


def baselines(jobs: Sequence[tuple[np.ndarray, int]], confidence: float
              ) -> list[dict[str, np.ndarray]]:
    """statsmodels' forecasts (:func:`_statsmodels`) for each (training window, horizon).

    The fits are deterministic, so they are kept in the project's cache, keyed by the windows
    (their lengths and bytes), the horizons, the confidence, the fitting code, the versions of
    statsmodels, numpy, pandas, scipy and Python, and the machine's architecture: a rerun on
    the same inputs reads them instead of fitting again (seconds of CPU for the whole
    back-test; a fresh checkout's first run fits), and any change to one of them fits again."""
    import inspect

    import scipy
    import statsmodels

    from opsflow.engine import cache

    parts: list[str | bytes] = [
        inspect.getsource(_statsmodels), repr(confidence),
        f"statsmodels {statsmodels.__version__} numpy {np.__version__} pandas "
        f"{pd.__version__} scipy {scipy.__version__} Python {sys.version} on "
        f"{platform.machine()}", str(len(jobs))]
    for train, horizon in jobs:
        window = np.ascontiguousarray(train, dtype=float).tobytes()
        parts += [str(len(window)), window, str(horizon)]

    def fit() -> list[dict[str, list[float]]]:
        FITS["fitted"] += len(jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [{name: values.tolist() for name, values in
                     _statsmodels(train, horizon, confidence).items()}
                    for train, horizon in jobs]

    before = FITS["fitted"]
    fitted = cache.cached_json("backtest-baselines", cache.key(*parts), fit)
    if FITS["fitted"] == before:
        FITS["read"] += len(jobs)
    return [{name: np.asarray(values, dtype=float) for name, values in one.items()}
            for one in fitted]


def evaluate(
    series: Series, origins: int, window: int, confidence: float, min_train: int = 90
) -> Result:
    """Rolling-origin evaluation of every method on one series."""
    n, h = len(series.values), series.horizon
    abs_pct: dict[str, list[float]] = {m: [] for m in METHODS}
    scaled: dict[str, list[float]] = {m: [] for m in METHODS}
    inside: dict[str, list[bool]] = {"ours": [], "ets": []}
    inside_h: dict[str, list[bool]] = {"ours": [], "ets": []}
    timings: list[float] = []
    chosen = origins_of(series, origins, window, min_train)
    fitted = baselines([(point.train, h) for point in chosen], confidence)
    for point, sm in zip(chosen, fitted, strict=True):
        origin, lo, train = point.origin, point.lo, point.train
        actual = np.asarray(series.values[origin : origin + h], dtype=float)
        scale = float(np.mean(np.abs(np.diff(train)))) or 1.0
        mean, lower, upper, elapsed, last_seen = _ours(series, lo, origin, confidence)
        timings.append(elapsed)
        predictions = {
            "ours": np.asarray(mean),
            "naive": np.full(h, last_seen),
            "holt": sm["holt"],
            "ets": sm["ets"],
        }
        for method, predicted in predictions.items():
            errors = np.abs(actual - predicted)
            abs_pct[method].extend((100.0 * errors / np.abs(actual)).tolist())
            scaled[method].append(float(np.mean(errors)) / scale)
        bands = {"ours": (np.asarray(lower), np.asarray(upper))}
        bands["ets"] = (sm["ets_lower"], sm["ets_upper"])
        for method, (low, high) in bands.items():
            hits = (actual >= low) & (actual <= high)
            inside[method].extend(bool(x) for x in hits)
            inside_h[method].append(bool(hits[-1]))
    return Result(
        name=series.name,
        n=n,
        horizon=h,
        origins=len(chosen),
        mape={m: statistics.fmean(v) for m, v in abs_pct.items()},
        mase={m: statistics.fmean(v) for m, v in scaled.items()},
        coverage={m: statistics.fmean(v) for m, v in inside.items()},
        coverage_at_h={m: statistics.fmean(v) for m, v in inside_h.items()},
        ms=1000.0 * statistics.median(timings),
    )


def format_table(results: Sequence[Result], confidence: float) -> str:
    """One row per series plus a summary row."""
    level = f"{confidence:.0%}"
    header = (
        f"{'series':<20} {'n':>5} {'h':>3} {'orig':>4} | "
        f"{'MAPE% ours':>10} {'naive':>6} {'holt':>6} {'ets':>6} | "
        f"{'MASE ours':>9} {'naive':>6} {'holt':>6} {'ets':>6} | "
        f"{'ours/naive':>10} {'ours/holt':>9} | "
        f"{'cov' + level + ' ours':>13} {'@h':>4} {'ets':>5} {'@h':>4} | {'ms':>6}"
    )
    rule = "-" * len(header)
    lines = [header, rule]
    for r in results:
        lines.append(
            f"{r.name:<20} {r.n:>5} {r.horizon:>3} {r.origins:>4} | "
            f"{r.mape['ours']:>10.2f} {r.mape['naive']:>6.2f} {r.mape['holt']:>6.2f} "
            f"{r.mape['ets']:>6.2f} | "
            f"{r.mase['ours']:>9.2f} {r.mase['naive']:>6.2f} {r.mase['holt']:>6.2f} "
            f"{r.mase['ets']:>6.2f} | "
            f"{r.mase['ours'] / r.mase['naive']:>10.2f} {r.mase['ours'] / r.mase['holt']:>9.2f} | "
            f"{r.coverage['ours']:>13.0%} {r.coverage_at_h['ours']:>4.0%} "
            f"{r.coverage['ets']:>5.0%} {r.coverage_at_h['ets']:>4.0%} | {r.ms:>6.1f}"
        )
    lines.append(rule)

    def geomean(values: list[float]) -> float:
        return math.exp(statistics.fmean(math.log(v) for v in values))

    vs_naive = geomean([r.mase["ours"] / r.mase["naive"] for r in results])
    vs_holt = geomean([r.mase["ours"] / r.mase["holt"] for r in results])
    mean_cov = statistics.fmean(r.coverage["ours"] for r in results)
    mean_cov_h = statistics.fmean(r.coverage_at_h["ours"] for r in results)
    ets_cov = statistics.fmean(r.coverage["ets"] for r in results)
    ets_cov_h = statistics.fmean(r.coverage_at_h["ets"] for r in results)
    summary_mase = {m: geomean([r.mase[m] for r in results]) for m in METHODS}
    lines.append(
        f"{'geomean / mean':<20} {'':>5} {'':>3} {'':>4} | {'':>10} {'':>6} {'':>6} {'':>6} | "
        f"{summary_mase['ours']:>9.2f} {summary_mase['naive']:>6.2f} "
        f"{summary_mase['holt']:>6.2f} {summary_mase['ets']:>6.2f} | "
        f"{vs_naive:>10.2f} {vs_holt:>9.2f} | "
        f"{mean_cov:>13.0%} {mean_cov_h:>4.0%} {ets_cov:>5.0%} {ets_cov_h:>4.0%} | {'':>6}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the back-test and print the table; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--origins", type=int, default=10, help="rolling origins per series")
    parser.add_argument("--horizon", type=int, default=30, help="steps ahead (daily series)")
    parser.add_argument("--window", type=int, default=365, help="maximum training length")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of generated series")
    parser.add_argument("--confidence", type=float, default=0.9, help="interval coverage")
    args = parser.parse_args(argv)

    import statsmodels

    started = time.perf_counter()
    series = generated_series(args.seed, horizon=args.horizon) + real_series(args.horizon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = [evaluate(s, args.origins, args.window, args.confidence) for s in series]
    print(
        f"Rolling-origin back-test: up to {args.origins} origins per series, training window "
        f"<= {args.window} steps, seed {args.seed}, statsmodels {statsmodels.__version__}, "
        f"Python {sys.version.split()[0]}"
    )
    print(format_table(results, args.confidence))
    print(
        "MASE ratios below 1 favour ours; geomean row: geometric mean of MASE and ratios, "
        "arithmetic mean of coverage."
    )
    print(f"total run time {time.perf_counter() - started:.1f} s (statsmodels baselines of "
          f"{FITS['fitted']} origins fitted, {FITS['read']} read from the cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
