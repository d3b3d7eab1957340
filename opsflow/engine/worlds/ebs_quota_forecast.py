"""The ebs-quota-forecast world: EBS volumes and snapshots in three regions, 60 days of usage
history already recorded as CloudWatch metrics, and Service Quotas values.

Growth shapes: us-east-1 gp3 grows steadily towards its applied quota (crosses 80 % within 30
days); ap-southeast-2 gp2 jumped when a fleet launched and keeps growing (no applied value: the
AWS default applies); eu-west-1 gp3 is flat and noisy, and its io2 shrinks as volumes are deleted.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any

from runbook_kit.aws import client

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
NAMESPACE = "opsflow/EBS"
HISTORY_DAYS = 60
GP2, GP3, IO2 = "L-D18FCD1D", "L-7A658B76", "L-09BD8365"


def _shapes(rng: random.Random) -> dict[str, dict[str, list[float]]]:
    """TiB per day (oldest first, HISTORY_DAYS values) for each region and volume type."""
    days = range(HISTORY_DAYS)
    return {
        "us-east-1": {
            "gp3": [30.0 + 0.125 * d + rng.gauss(0, 0.15) for d in days],
            "gp2": [2.0 for _ in days],
        },
        "eu-west-1": {
            "gp3": [8.0 + rng.gauss(0, 0.2) for _ in days],
            "io2": [15.0 - (2.5 if d > 20 else 0) - (2.5 if d > 45 else 0) for d in days],
        },
        "ap-southeast-2": {
            "gp2": [5.0 + 0.02 * d if d < 50 else 36.0 + 0.12 * (d - 50) + rng.gauss(0, 0.1)
                    for d in days],
        },
    }


def _volumes(ec2: Any, region: str, volume_type: str, tib: float) -> None:
    """Volumes of at most 16 TiB whose sizes add up to ``tib``."""
    remaining = round(tib * 1024)
    while remaining > 0:
        size = min(remaining, 12_800)
        extra = {"Iops": 3000} if volume_type == "io2" else {}
        ec2.create_volume(AvailabilityZone=f"{region}a", Size=size, VolumeType=volume_type, **extra)
        remaining -= size


def build(context: Any) -> dict[str, Any]:
    rng = random.Random(20191202)
    today = context.clock.now().date()
    quotas = context.fakes["service-quotas"]
    quotas.set_applied("us-east-1", GP3, 50.0)
    quotas.set_applied("eu-west-1", IO2, 20.0)
    summary: dict[str, Any] = {}
    for region, types in _shapes(rng).items():
        ec2 = client("ec2", region)
        cloudwatch = client("cloudwatch", region)
        for volume_type, series in types.items():
            _volumes(ec2, region, volume_type, series[-1])
            data = [
                {
                    "MetricName": "StorageTiB",
                    "Dimensions": [{"Name": "VolumeType", "Value": volume_type}],
                    "Timestamp": datetime.combine(
                        today - timedelta(days=HISTORY_DAYS - i), time(12), UTC
                    ),
                    "Value": round(value, 3),
                    "Unit": "Count",
                }
                for i, value in enumerate(series)
            ]
            for start in range(0, len(data), 500):
                cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + 500])
        volumes = ec2.describe_volumes()["Volumes"]
        snapshots = 20 if region == "us-east-1" else 5
        for i in range(snapshots):
            ec2.create_snapshot(VolumeId=volumes[i % len(volumes)]["VolumeId"])
        summary[region] = {t: round(s[-1], 2) for t, s in types.items()}
    return {"usageTiB": summary}
