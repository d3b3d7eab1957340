"""Local evaluation of the canary's anomaly-detection alarm, and the event CloudWatch sends.

moto stores alarms but never evaluates them, and it has no anomaly detectors. The region-failover
runbook starts on the ``CloudWatch Alarm State Change`` event of an alarm whose threshold is
``ANOMALY_DETECTION_BAND(m1, width)``, so this module evaluates that alarm itself and writes the
event in the shape CloudWatch sends to EventBridge.

What CloudWatch does
--------------------
An anomaly detector trains a model on up to two weeks of the metric's history, with hourly, daily
and weekly seasonality and trend, and keeps retraining as data arrives. ``ANOMALY_DETECTION_BAND``
returns, for every period, the model's expected value plus and minus ``width`` times the model's
standard deviation (``width`` is the second argument, 2 by default). The model needs data before
it produces a band; until then the band is empty and the alarm stays ``INSUFFICIENT_DATA``.

What this engine does instead
-----------------------------
A trailing-window model, simple enough to reason about in a test::

    training = the metric's period values in [start - window, start)   (window: 3 hours)
    expected = mean(training)
    spread   = max(stdev(training), 2 % of |expected|, 1.0)
    band     = expected - width * spread .. expected + width * spread

``start`` is the first period of the alarm's evaluation range, so the periods being judged never
train the band that judges them, and all periods of one evaluation share one band. The floor on
the spread keeps a perfectly flat series from alarming on a 1 ms wobble. At least
``MIN_TRAINING_POINTS`` period values are needed; with fewer the band is empty
(:class:`NotTrained`) and the alarm is ``INSUFFICIENT_DATA``.

Limits: no seasonality (a daily peak slower than the window is followed with a lag, a faster one
is noise), no trend beyond what the trailing mean follows, and a long anomaly gradually widens
the band as it enters the training window (after 15 minutes of +300 ms on a 120 ms series with
10 ms noise, the upper threshold is ~310 ms instead of ~136 ms). Only the
``GreaterThanUpperThreshold`` comparison is implemented, with ``TreatMissingData: missing``.

Evaluation
----------
Periods are aligned to whole multiples of the alarm's period since the epoch; the evaluation range
is the ``EvaluationPeriods`` complete periods before ``now``. Datapoints are aggregated per
period with the alarm's statistic. Scanning from the newest period, the alarm goes to ``ALARM``
once ``DatapointsToAlarm`` periods are above the upper threshold, and to ``OK`` once
``EvaluationPeriods - DatapointsToAlarm + 1`` periods are not (so ALARM can no longer be
reached). A range with no datapoint, or an untrained band, is ``INSUFFICIENT_DATA``. A range
too sparse to decide either way keeps an ``OK`` or ``ALARM`` state (CloudWatch would also look
further back than the evaluation range; this engine does not).

The reason text, ``reasonData`` and the event follow CloudWatch's anomaly-detection alarm events
(see the Amazon CloudWatch User Guide, "Alarm events and EventBridge"): ``reasonData`` is a JSON
string with ``recentDatapoints`` (oldest first), ``recentUpperThresholds`` and
``evaluatedDatapoints`` (newest first, ``timestamp``/``value``/``threshold``, no ``sampleCount``
for a metric-math alarm); dates inside are ``2024-07-25T07:21:00.000+0000``, the event's ``time``
is ``2024-07-25T07:22:32Z``.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

GREATER_THAN_UPPER = "GreaterThanUpperThreshold"
EVENT_DETAIL_TYPE = "CloudWatch Alarm State Change"
EVENT_SOURCE = "aws.cloudwatch"

TRAINING_WINDOW = timedelta(hours=3)
MIN_TRAINING_POINTS = 30
SPREAD_FLOOR_FRACTION = 0.02
SPREAD_FLOOR_ABSOLUTE = 1.0
DEFAULT_BAND_WIDTH = 2.0

STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_BAND = re.compile(
    r"^\s*ANOMALY_DETECTION_BAND\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:,\s*([0-9]+(?:\.[0-9]+)?)\s*)?\)\s*$"
)
_ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:([a-z0-9-]+):(\d{12}):alarm:(.+)$")

# Synthetic canary noise: a slow daily swing, Gaussian jitter and rare single-minute spikes.
DAILY_SWING = 0.05
SPIKE_RATE = 0.005
SPIKE_SCALE = (3.0, 6.0)


class NotTrained(ValueError):
    """Too few datapoints in the training window to draw a band."""


@dataclass(frozen=True)
class AlarmSpec:
    """An anomaly-detection alarm on one metric: ``m1`` the metric, ``ad1`` the band.

    ``region`` and ``account`` are where the alarm lives (its ARN and its events); the region the
    canary measures is a dimension of the metric.
    """

    name: str
    region: str
    account: str
    metric_name: str
    namespace: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    period: int = 60
    stat: str = "Average"
    evaluation_periods: int = 3
    datapoints_to_alarm: int = 3
    band_width: float = DEFAULT_BAND_WIDTH
    comparison: str = GREATER_THAN_UPPER
    description: str | None = None
    metric_id: str = "m1"
    band_id: str = "ad1"
    band_label: str | None = None
    band_expression: str | None = None

    def __post_init__(self) -> None:
        if self.comparison != GREATER_THAN_UPPER:
            raise ValueError(
                f"alarm {self.name}: only {GREATER_THAN_UPPER} is evaluated locally, "
                f"got {self.comparison}"
            )
        if self.stat not in STATISTICS:
            raise ValueError(
                f"alarm {self.name}: statistic {self.stat!r} is not one of {STATISTICS}"
            )
        if (
            self.period <= 0
            or (self.period < 60 and self.period not in (10, 20, 30))
            or (self.period >= 60 and self.period % 60)
        ):
            raise ValueError(f"alarm {self.name}: period {self.period} is not a CloudWatch period")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ValueError(
                f"alarm {self.name}: DatapointsToAlarm {self.datapoints_to_alarm} must be between 1 "
                f"and EvaluationPeriods {self.evaluation_periods}"
            )
        if self.band_width <= 0:
            raise ValueError(f"alarm {self.name}: band width must be positive")

    @property
    def arn(self) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{self.name}"

    @property
    def expression(self) -> str:
        """The band's expression as the alarm spells it (``ANOMALY_DETECTION_BAND(m1, 2)``)."""
        return self.band_expression or (
            f"ANOMALY_DETECTION_BAND({self.metric_id}, {self.band_width:g})"
        )

    @classmethod
    def from_describe_alarms(
        cls, alarm: Mapping[str, Any], *, region: str | None = None, account: str | None = None
    ) -> AlarmSpec:
        """An item of DescribeAlarms ``MetricAlarms``: a metric-math alarm with a band threshold.

        Region and account come from ``AlarmArn``; pass them when the item has no ARN.
        """
        name = alarm.get("AlarmName")
        if not isinstance(name, str) or not name:
            raise ValueError("the alarm has no AlarmName")
        match = _ALARM_ARN.match(str(alarm.get("AlarmArn", "")))
        if match:
            region, account = region or match.group(1), account or match.group(2)
        if not region or not account:
            raise ValueError(f"alarm {name}: no AlarmArn, pass region and account")
        threshold_id = alarm.get("ThresholdMetricId")
        metrics = {m.get("Id"): m for m in alarm.get("Metrics") or [] if isinstance(m, Mapping)}
        if not threshold_id or threshold_id not in metrics:
            raise ValueError(f"alarm {name}: not an anomaly-detection alarm (no ThresholdMetricId)")
        band_query = metrics[threshold_id]
        found = _BAND.match(str(band_query.get("Expression", "")))
        if not found:
            raise ValueError(
                f"alarm {name}: threshold {threshold_id} is not ANOMALY_DETECTION_BAND(...), got "
                f"{band_query.get('Expression')!r}"
            )
        metric_id = found.group(1)
        stat_query = metrics.get(metric_id, {}).get("MetricStat")
        if not isinstance(stat_query, Mapping):
            raise ValueError(f"alarm {name}: the band's metric {metric_id} has no MetricStat")
        metric = stat_query.get("Metric") or {}
        return cls(
            name=name,
            region=region,
            account=account,
            metric_name=str(metric.get("MetricName", "")),
            namespace=str(metric.get("Namespace", "")),
            dimensions={str(d["Name"]): str(d["Value"]) for d in metric.get("Dimensions") or []},
            period=int(stat_query.get("Period", 60)),
            stat=str(stat_query.get("Stat", "Average")),
            evaluation_periods=int(alarm.get("EvaluationPeriods", 1)),
            datapoints_to_alarm=int(
                alarm.get("DatapointsToAlarm") or alarm.get("EvaluationPeriods", 1)
            ),
            band_width=float(found.group(2)) if found.group(2) else DEFAULT_BAND_WIDTH,
            comparison=str(alarm.get("ComparisonOperator", "")),
            description=alarm.get("AlarmDescription") or None,
            metric_id=metric_id,
            band_id=str(threshold_id),
            band_label=band_query.get("Label") or None,
            band_expression=str(band_query["Expression"]),
        )


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of an alarm at ``query_date``."""

    state: str
    reason: str
    reason_data: dict[str, Any]
    changed: bool
    query_date: datetime
    datapoints: tuple[tuple[datetime, float | None], ...]
    lower: float | None
    upper: float | None

    @property
    def reason_data_json(self) -> str:
        """``reasonData`` as CloudWatch writes it: compact JSON in a string."""
        return json.dumps(self.reason_data, separators=(",", ":"))

    @property
    def breaching(self) -> int:
        if self.upper is None:
            return 0
        return sum(1 for _, v in self.datapoints if v is not None and v > self.upper)


def band(
    history: Sequence[tuple[datetime, float]],
    at: datetime,
    width: float = DEFAULT_BAND_WIDTH,
    window: timedelta = TRAINING_WINDOW,
) -> tuple[float, float]:
    """The (lower, upper) band at ``at``, trained on the values in ``[at - window, at)``."""
    since = _aware(at) - window
    training = [float(v) for t, v in history if since <= t < at]
    if len(training) < MIN_TRAINING_POINTS:
        raise NotTrained(
            f"{len(training)} datapoints in the {window} before {at.isoformat()}, "
            f"{MIN_TRAINING_POINTS} needed"
        )
    expected = math.fsum(training) / len(training)
    deviation = math.sqrt(math.fsum((v - expected) ** 2 for v in training) / (len(training) - 1))
    spread = max(
        deviation,
        SPREAD_FLOOR_FRACTION * abs(expected),
        SPREAD_FLOOR_ABSOLUTE,
    )
    return expected - width * spread, expected + width * spread


def evaluate(
    spec: AlarmSpec,
    datapoints: Sequence[tuple[datetime, float]],
    now: datetime,
    previous_state: str,
    window: timedelta = TRAINING_WINDOW,
) -> Evaluation:
    """Evaluate the alarm at ``now`` on raw datapoints (every sample the canary published)."""
    _aware(now)
    if previous_state not in STATES:
        raise ValueError(f"previous state must be one of {STATES}, got {previous_state!r}")
    step = timedelta(seconds=spec.period)
    end = _floor(now, spec.period)
    stamps = [end - step * (spec.evaluation_periods - i) for i in range(spec.evaluation_periods)]
    since = stamps[0] - window
    series = _aggregate([p for p in datapoints if since <= p[0] < end], spec.period, spec.stat)
    window_values = tuple((t, series.get(t)) for t in stamps)
    try:
        lower, upper = band(sorted(series.items()), stamps[0], spec.band_width, window)
    except NotTrained:
        return _insufficient(spec, now, previous_state, window_values, None, None)
    if all(v is None for _, v in window_values):
        return _insufficient(spec, now, previous_state, window_values, lower, upper)

    need_alarm = spec.datapoints_to_alarm
    need_ok = spec.evaluation_periods - spec.datapoints_to_alarm + 1
    above = below = 0
    scanned: list[tuple[datetime, float | None]] = []
    decided: str | None = None
    for stamp, value in reversed(window_values):
        scanned.append((stamp, value))
        if value is None:
            continue
        if value > upper:
            above += 1
        else:
            below += 1
        if above >= need_alarm:
            decided = ALARM
            break
        if below >= need_ok:
            decided = OK
            break
    if decided is None:
        if previous_state == INSUFFICIENT_DATA:
            return _insufficient(spec, now, previous_state, window_values, lower, upper)
        decided = previous_state

    supporting = [
        (t, v)
        for t, v in reversed(window_values)
        if v is not None and ((v > upper) == (decided == ALARM))
    ]
    present = [(t, v) for t, v in window_values if v is not None]
    reason_data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso_ms(now),
        "startDate": _iso_ms(present[0][0]),
        "period": spec.period,
        "recentDatapoints": [v for _, v in present],
        "recentUpperThresholds": [upper for _ in present],
        "evaluatedDatapoints": [
            {"timestamp": _iso_ms(t)}
            if v is None
            else {"timestamp": _iso_ms(t), "value": v, "threshold": upper}
            for t, v in scanned
        ],
    }
    if supporting:
        reason = _reason(decided, supporting, upper, spec)
    else:
        reason = (
            f"Unchanged: {len(present)} of the last {spec.evaluation_periods} datapoints present, "
            f"too few to decide (this engine's wording: CloudWatch's is not documented)."
        )
    return Evaluation(
        state=decided,
        reason=reason,
        reason_data=reason_data,
        changed=decided != previous_state,
        query_date=now,
        datapoints=window_values,
        lower=lower,
        upper=upper,
    )


def state_change_event(
    spec: AlarmSpec,
    evaluation: Evaluation,
    previous_state: str,
    previous_reason: str,
    now: datetime,
    *,
    previous_reason_data: str | None = None,
    previous_timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The ``CloudWatch Alarm State Change`` event EventBridge delivers for this evaluation.

    ``previous_timestamp`` is when the previous state was set; by default the previous
    evaluation, one period before ``evaluation.query_date``.
    """
    _aware(now)
    before = previous_timestamp or evaluation.query_date - timedelta(seconds=spec.period)
    previous: dict[str, Any] = {"value": previous_state, "reason": previous_reason}
    if previous_reason_data is not None:
        previous["reasonData"] = previous_reason_data
    previous["timestamp"] = _iso_ms(before)
    configuration: dict[str, Any] = {}
    if spec.description:
        configuration["description"] = spec.description
    configuration["metrics"] = [
        {
            "id": spec.metric_id,
            "metricStat": {
                "metric": {
                    "namespace": spec.namespace,
                    "name": spec.metric_name,
                    "dimensions": dict(spec.dimensions),
                },
                "period": spec.period,
                "stat": spec.stat,
            },
            "returnData": True,
        },
        {
            "id": spec.band_id,
            "expression": spec.expression,
            "label": spec.band_label or f"{spec.metric_name} (expected)",
            "returnData": True,
        },
    ]
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{spec.arn}@{_iso_ms(now)}")),
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": spec.account,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": spec.region,
        "resources": [spec.arn],
        "detail": {
            "alarmName": spec.name,
            "state": {
                "value": evaluation.state,
                "reason": evaluation.reason,
                "reasonData": evaluation.reason_data_json,
                "timestamp": _iso_ms(evaluation.query_date),
            },
            "previousState": previous,
            "configuration": configuration,
        },
    }


def synthetic_history(
    region: str,
    start: datetime,
    end: datetime,
    base_ms: float,
    noise_ms: float,
    seed: int | str,
    step: timedelta = timedelta(minutes=1),
) -> list[tuple[datetime, float]]:
    """Canary response times in ``[start, end)``, one per ``step``; the same inputs, the same series.

    Each value is ``base_ms`` with a ±5 % daily swing (slowest in the late afternoon UTC), plus
    Gaussian noise of standard deviation ``noise_ms``, plus a rare one-off spike of 3 to 6 times
    ``noise_ms`` (0.5 % of samples: a retransmit, a cold connection). Never below 1 ms.
    """
    _aware(start)
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    rng = random.Random(f"opsflow-canary:{region}:{seed}")
    points: list[tuple[datetime, float]] = []
    at = start
    while at < end:
        seconds = at.hour * 3600 + at.minute * 60 + at.second
        level = base_ms * (1 + DAILY_SWING * math.sin(2 * math.pi * (seconds / 86400 - 0.5)))
        value = level + rng.gauss(0.0, noise_ms)
        if rng.random() < SPIKE_RATE:
            value += rng.uniform(*SPIKE_SCALE) * noise_ms
        points.append((at, round(max(value, 1.0), 3)))
        at += step
    return points


def with_latency(
    series: Sequence[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    delay_ms: float,
    jitter_ms: float,
    seed: int | str,
) -> list[tuple[datetime, float]]:
    """``series`` with ``delay_ms`` ± ``jitter_ms`` (uniform, as netem draws it) added in ``[start, end)``.

    ``delay_ms`` is the added response time. A netem delay applies to every packet of the
    interface it is on, so a request needing several round trips sees a multiple of it: pass the
    response-time increase the fault is meant to cause.
    """
    rng = random.Random(f"opsflow-latency:{seed}")
    shifted: list[tuple[datetime, float]] = []
    for at, value in series:
        if start <= at < end:
            value = round(value + max(0.0, delay_ms + rng.uniform(-jitter_ms, jitter_ms)), 3)
        shifted.append((at, value))
    return shifted


def _insufficient(
    spec: AlarmSpec,
    now: datetime,
    previous_state: str,
    window_values: tuple[tuple[datetime, float | None], ...],
    lower: float | None,
    upper: float | None,
) -> Evaluation:
    unknown = len(window_values)
    reason_data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso_ms(now),
        "period": spec.period,
        "recentDatapoints": [],
        "recentUpperThresholds": [],
        "evaluatedDatapoints": [{"timestamp": _iso_ms(t)} for t, _ in reversed(window_values)],
    }
    return Evaluation(
        state=INSUFFICIENT_DATA,
        reason=f"Insufficient Data: {unknown} datapoint{'s were' if unknown != 1 else ' was'} "
        "unknown.",
        reason_data=reason_data,
        changed=previous_state != INSUFFICIENT_DATA,
        query_date=now,
        datapoints=window_values,
        lower=lower,
        upper=upper,
    )


def _reason(
    state: str, supporting: list[tuple[datetime, float]], upper: float, spec: AlarmSpec
) -> str:
    count = len(supporting)
    points = ", ".join(f"{_number(v)} ({t.strftime('%d/%m/%y %H:%M:%S')})" for t, v in supporting)
    thresholds = ", ".join(_number(upper) for _ in supporting)
    if state == ALARM:
        minimum, transition, comparison = spec.datapoints_to_alarm, "OK -> ALARM", "greater"
    else:
        minimum = spec.evaluation_periods - spec.datapoints_to_alarm + 1
        transition, comparison = "ALARM -> OK", "not greater"
    return (
        f"Thresholds Crossed: {count} out of the last {spec.evaluation_periods} datapoints "
        f"[{points}] {'was' if count == 1 else 'were'} {comparison} than the upper thresholds "
        f"[{thresholds}] (minimum {minimum} datapoint{'' if minimum == 1 else 's'} for "
        f"{transition} transition)."
    )


def _aggregate(
    datapoints: Sequence[tuple[datetime, float]], period: int, stat: str
) -> dict[datetime, float]:
    buckets: dict[datetime, list[float]] = {}
    for at, value in datapoints:
        buckets.setdefault(_floor(at, period), []).append(float(value))
    reducers: dict[str, Callable[[list[float]], float]] = {
        "Average": statistics.fmean,
        "Sum": math.fsum,
        "Minimum": min,
        "Maximum": max,
        "SampleCount": lambda values: float(len(values)),
    }
    reduce = reducers[stat]
    return {at: float(reduce(values)) for at, values in buckets.items()}


def _floor(at: datetime, period: int) -> datetime:
    seconds = math.floor(_aware(at).timestamp())
    return datetime.fromtimestamp(seconds - seconds % period, UTC)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return at


def _iso_ms(at: datetime) -> str:
    utc = _aware(at).astimezone(UTC)
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}.{utc.microsecond // 1000:03d}+0000"


def _number(value: float) -> str:
    """A double as CloudWatch prints it: always with a fraction (``2.0``, ``225.71426732099445``)."""
    return repr(float(value))
