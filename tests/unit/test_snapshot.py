"""An engine restored from a snapshot is the engine a build makes (``opsflow.engine.snapshot``):
the same account, IDs, ARNs, virtual time and random draws to come, the same runs; and what one
engine changes never reaches the next.

Two builds differ in what moto and the functions read from the real clock (creation dates,
``dedupeExpiresAt``) and in how concurrent branches interleave (Map iterations), whether
restored or not: :func:`comparable` sets those aside and keeps everything else of a run.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from opsflow.engine import snapshot
from opsflow.engine.boundary import parse_fault
from opsflow.engine.clock import DEFAULT_START
from opsflow.engine.runner import ACCOUNT, EngineError, LocalEngine
from tests.conftest import load_event

SAMPLES = {
    "health-abuse": "health-abuse/dos-report-arn.json",
    "ebs-quota-forecast": "ebs-quota-forecast/daily-schedule.json",
    "region-failover": "region-failover/alarm-primary.json",
}
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?")
_EPOCH = re.compile(r"\b1\d{9}(?:\.\d+)?\b")
_YEAR = 366 * 24 * 3600


def _real_time_removed(text: str) -> str:
    """``text`` with the times read from the real clock (within a year of now, as ISO text or
    epoch seconds) replaced; the virtual clock's times stay."""
    now, today = time.time(), date.today()

    def iso(match: re.Match[str]) -> str:
        day = date.fromisoformat(match.group(0)[:10])
        return "<real time>" if abs((day - today).days) <= 366 else match.group(0)

    def epoch(match: re.Match[str]) -> str:
        return "<real time>" if abs(float(match.group(0)) - now) <= _YEAR else match.group(0)

    return _EPOCH.sub(epoch, _ISO.sub(iso, text))


def _text(value: Any) -> str:
    return _real_time_removed(json.dumps(value, default=str, sort_keys=True))


def comparable(execution: Any) -> dict[str, Any]:
    """A run as two builds of one world give it alike: its result, effects, notifications,
    virtual duration and every history event (without its position, which concurrent branches
    shuffle)."""
    events = sorted(
        _text({k: v for k, v in event.items() if k not in ("id", "previousEventId")})
        for event in execution.history
    )
    return {
        "status": execution.status,
        "outcome": execution.outcome,
        "error": execution.error,
        "cause": execution.cause,
        "output": _text(execution.output),
        "states": sorted(execution.states),
        "virtual_seconds": execution.virtual_seconds,
        "effects": execution.effects,
        "notifications": _text(execution.notifications),
        "events": events,
    }


def describe(engine: LocalEngine) -> dict[str, Any]:
    """What an engine shows of its emulated account and its deployed stack."""
    return {
        "observe": engine.observe(),
        "world": copy.deepcopy(engine.world),
        "parameters": engine.parameters(),
        "state_machines": dict(engine.state_machines),
        "definitions": dict(engine.definitions),
        "rules": [
            (r.name, r.scenario, r.pattern, r.state_machine_arn, r.role, r.arn, r.target)
            for r in engine.rules
        ],
        "function_urls": dict(engine.function_urls),
        "functions": {name: vars(f) for name, f in engine.functions.items()},
        "lambdas": sorted(engine.boundary.lambdas),
        "environment": {
            key: os.environ.get(key)
            for function in engine.functions.values()
            for key in function.environment
        },
        "vpcs": {
            region: sorted(v["VpcId"] for v in engine.client("ec2", region).describe_vpcs()["Vpcs"])
            for region in sorted({r for s in engine.scenarios for r in engine.regions(s)})
        },
        "clock": engine.clock.now(),
        "fakes": {name: getattr(fake, "observe", dict)() for name, fake in engine.fakes.items()},
        "endpoint groups": engine.fakes["globalaccelerator"].endpoint_groups(),
        "quota requests": engine.fakes["service-quotas"].requests(),
    }


@pytest.fixture
def built() -> Iterator[None]:
    """The next engine of each build key builds (and keeps its snapshot for the ones after)."""
    snapshot.forget()
    yield


def _runs(engine: LocalEngine) -> dict[str, dict[str, Any]]:
    return {
        scenario: comparable(engine.run(scenario, load_event(SAMPLES[scenario]), name="same"))
        for scenario in engine.scenarios
    }


@pytest.mark.parametrize("scenarios", [[s] for s in SAMPLES] + [None], ids=[*SAMPLES, "all"])
def test_a_restored_engine_is_the_engine_a_build_makes(
    built: None, scenarios: list[str] | None
) -> None:
    with LocalEngine(scenarios=scenarios) as first:
        assert not first.restored
        account, runs = describe(first), _runs(first)
    with LocalEngine(scenarios=scenarios) as second:
        assert second.restored
        assert describe(second) == account
        assert _runs(second) == runs
    assert all(run["status"] == "SUCCEEDED" for run in runs.values())


def test_a_restored_engine_runs_its_faults_as_a_built_one(built: None) -> None:
    """Faults act at the boundary, after the build: engines with and without faults share a
    snapshot, and each engine counts its own faults from zero."""
    event = load_event(SAMPLES["health-abuse"])
    faults = ["ec2:StopInstances=RequestLimitExceeded*2"]
    runs = []
    for _ in range(3):
        with LocalEngine(faults=[parse_fault(f) for f in faults],
                         scenarios=["health-abuse"]) as engine:
            execution = engine.run("health-abuse", event, name="x")
            runs.append((engine.restored, engine.faults[0].seen, comparable(execution)))
    assert [restored for restored, _, _ in runs] == [False, True, True]
    assert runs[0][2] == runs[1][2] == runs[2][2]
    assert runs[0][2]["outcome"] == "mitigated"
    assert runs[0][1] == runs[1][1] == runs[2][1] > 2  # failed twice, then answered


def test_what_one_engine_changes_never_reaches_the_next() -> None:
    with LocalEngine() as first:
        pristine = describe(first)
        for scenario, sample in SAMPLES.items():
            assert first.run(scenario, load_event(sample)).effects
        ec2 = first.client("ec2")
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
        first.set_kill_switch("on")
        first.clock.advance(3600)
        first.fakes["service-quotas"].set_applied("us-east-1", "L-D18FCD1D", 1.0)
        first.world["health-abuse"]["instances"].clear()
        first.rules.clear()
        first.state_machines.pop("health-abuse")
        first.definitions.clear()
        changed = describe(first)
    assert changed != pristine
    with LocalEngine() as second:
        assert second.restored
        assert describe(second) == pristine
        assert second.world is not first.world and second.fakes is not first.fakes
        assert second.stack is not first.stack
        with pytest.raises(second.client("ec2").exceptions.ClientError, match="NotFound"):
            second.client("ec2").describe_volumes(VolumeIds=[volume])


def test_a_build_does_not_depend_on_the_engines_before_it(built: None) -> None:
    with LocalEngine(scenarios=["health-abuse"]) as first:
        account = describe(first)
        first.run("health-abuse", load_event(SAMPLES["health-abuse"]))
    with LocalEngine(scenarios=["region-failover"]) as other:
        other.run("region-failover", load_event(SAMPLES["region-failover"]))
    snapshot.forget()
    with LocalEngine(scenarios=["health-abuse"]) as again:
        assert not again.restored
        assert describe(again) == account


def test_a_build_does_not_depend_on_other_users_of_moto(built: None) -> None:
    """moto's own reset, at the end of any mock, makes again the EC2 backends Auto Scaling's
    reach, with default VPCs drawn then; an engine starts without them."""
    import boto3
    from moto import mock_aws

    with LocalEngine(scenarios=["health-abuse"]) as first:
        account = describe(first)
    snapshot.forget()
    with mock_aws():  # EC2 first: its backends are reset before Auto Scaling's make them again
        boto3.client("ec2", region_name="us-east-1").describe_vpcs()
        boto3.client("autoscaling", region_name="us-east-1").describe_auto_scaling_groups()
    with LocalEngine(scenarios=["health-abuse"]) as again:
        assert not again.restored
        assert describe(again) == account


def test_an_engine_inside_another_mock_builds_on_its_state(built: None) -> None:
    """Inside another ``mock_aws`` the account holds that mock's state too: the engine
    builds there, and takes and restores no snapshot."""
    import boto3
    from moto import mock_aws

    with LocalEngine(scenarios=["health-abuse"]):
        pass
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        outer = sqs.create_queue(QueueName="outer")["QueueUrl"]
        with LocalEngine(scenarios=["health-abuse"]) as inner:
            assert not inner.restored
            assert outer in sqs.list_queues()["QueueUrls"]
        assert outer in sqs.list_queues()["QueueUrls"]
    with LocalEngine(scenarios=["health-abuse"]) as after:
        assert after.restored
        queues = after.client("sqs").list_queues().get("QueueUrls", [])
        assert outer not in queues


def _draw(engine: LocalEngine) -> list[str]:
    """IDs the account draws from here on: new resources, and a region no world uses (moto
    makes its default VPC on first use)."""
    ec2 = engine.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="drawn", Description="drawn", VpcId=vpc)
    zone = engine.client("route53").create_hosted_zone(Name="drawn.example.com",
                                                        CallerReference="drawn")
    far = engine.client("ec2", "ap-northeast-1").describe_vpcs()["Vpcs"]
    return [vpc, group["GroupId"], zone["HostedZone"]["Id"], *(v["VpcId"] for v in far)]


def test_ids_drawn_after_a_restore_are_those_a_build_draws(built: None) -> None:
    with LocalEngine(scenarios=["region-failover"]) as first:
        drawn = _draw(first)
    with LocalEngine(scenarios=["region-failover"]) as second:
        assert second.restored
        assert _draw(second) == drawn


def test_each_build_key_has_its_own_snapshot(built: None) -> None:
    """Parameter overrides and the scenarios built change what the build creates."""
    with LocalEngine(scenarios=["health-abuse"]) as plain:
        default = plain.parameters()["MaxInstances"]
        definition = plain.definitions[plain.state_machines["health-abuse"]]
    wanted = str(int(default) + 1)
    for restored in (False, True):
        with LocalEngine(scenarios=["health-abuse"], parameters={"MaxInstances": wanted}) as other:
            assert other.restored is restored
            assert other.parameters()["MaxInstances"] == wanted
            assert other.definitions[other.state_machines["health-abuse"]] != definition
    with LocalEngine(scenarios=["ebs-quota-forecast", "health-abuse"]) as both:
        assert not both.restored
        assert sorted(both.world) == ["ebs-quota-forecast", "health-abuse"]


def test_an_engine_checks_its_parameters_against_its_own_template(built: None) -> None:
    """An engine given another template (a bound the committed one forbids) has its own
    snapshot: the committed template still refuses the value."""
    overrides = {"RequireApproval": "true", "ApprovalTimeoutSeconds": "7200"}
    for restored in (False, True):
        engine = LocalEngine(parameters=overrides, scenarios=["region-failover"])
        engine.template = copy.deepcopy(engine.template)
        engine.template["Parameters"]["ApprovalTimeoutSeconds"]["MaxValue"] = 86400
        with engine:
            assert engine.restored is restored
            assert engine.parameters()["ApprovalTimeoutSeconds"] == "7200"
    with pytest.raises(EngineError, match="ApprovalTimeoutSeconds"):
        LocalEngine(parameters=overrides, scenarios=["region-failover"]).__enter__()
    with LocalEngine(scenarios=["region-failover"]) as after:  # nothing left of the failed one
        assert after.parameters()["ApprovalTimeoutSeconds"] != "7200"


@pytest.mark.parametrize("scenario, first, second", [
    ("region-failover", {}, {"TrafficMechanism": "arc", "GlobalClusterIdentifier": "shop"}),
    ("region-failover", {"DryRun": "true"}, {"AutoScalingGroupName": "web"}),
    ("health-abuse", {}, {"DryRun": "true", "AutoScalingMode": "detach"}),
])
def test_worlds_kept_for_other_parameters_deploy_the_stack_a_build_deploys(
    built: None, scenario: str, first: dict[str, str], second: dict[str, str]
) -> None:
    """An engine whose parameters differ only where the worlds do not read them restores the
    worlds (not the stack) and deploys its own stack: the engine a build of its own makes."""
    from opsflow.engine import runner

    with LocalEngine(scenarios=[scenario], parameters=first):
        pass  # builds the worlds, keeps them
    with LocalEngine(scenarios=[scenario], parameters=second) as reused:
        assert not reused.restored  # its own stack was deployed
        account, runs = describe(reused), _runs(reused)
    snapshot.forget()
    runner._WORLD_READS.clear()
    with LocalEngine(scenarios=[scenario], parameters=second) as fresh:
        assert describe(fresh) == account
        assert _runs(fresh) == runs


def test_worlds_are_kept_by_the_parameters_they_read(built: None) -> None:
    """region-failover's world reads PrimaryRegion: the worlds of another primary are other
    worlds; a parameter no builder reads leaves the worlds' key as it is."""
    from opsflow.engine import runner

    with LocalEngine(scenarios=["region-failover"]):
        pass
    reads = runner._WORLD_READS[("region-failover",)]
    assert "PrimaryRegion" in reads and "TrafficMechanism" not in reads

    def world_key(**parameters: str) -> Any:
        return LocalEngine(scenarios=["region-failover"], parameters=parameters)._world_key(reads)

    assert world_key() == world_key(TrafficMechanism="arc", DryRun="true")
    assert world_key() != world_key(PrimaryRegion="us-west-2")
    assert snapshot.saved(world_key()) is not None


def test_a_build_assigns_the_attributes_it_sets() -> None:
    """The snapshot holds the attributes a build assigns (found by identity): an attribute the
    engine had before must not be changed in place by the build, or no snapshot would hold the
    change."""
    engine = LocalEngine()
    identity = dict(vars(engine))
    values = copy.deepcopy({k: v for k, v in identity.items() if k != "_env"})
    snapshot.forget()
    with engine:
        assert not engine.restored
        kept = {k for k, v in vars(engine).items() if identity.get(k, object()) is v}
        assert {k: vars(engine)[k] for k in kept if k in values} == {
            k: values[k] for k in kept if k in values
        }


def test_a_restored_engine_wires_its_own_handlers_and_iam(built: None) -> None:
    event = load_event(SAMPLES["health-abuse"])
    with LocalEngine(scenarios=["health-abuse"]) as first:
        first_boundary, first_authorizer = first.boundary, first.authorizer
    with LocalEngine(scenarios=["health-abuse"]) as second:
        assert second.restored
        assert second.authorizer is not first_authorizer
        assert second.authorizer.principals is second.principals
        execution = second.run("health-abuse", event)
        assert execution.notifications and second.boundary.notifications
        assert second.authorizer.calls
        assert first_boundary.notifications == [] and first_authorizer.calls == []
        queue = second.client("sqs").create_queue(QueueName="drawn")["QueueUrl"]
        second.client("sqs").send_message(QueueUrl=queue, MessageBody="kept")
        got = second.client("sqs").receive_message(QueueUrl=queue)["Messages"]
        assert [m["Body"] for m in got] == ["kept"]


# ---------------------------------------------------------------- the moto internals it relies on


def test_an_engine_leaves_moto_with_no_backends() -> None:
    """moto lists the backends in use (``BackendDict._instances``), which the snapshot holds;
    stopping resets them, and the engine clears those moto's reset makes again (Auto Scaling's
    reaches EC2's), so nothing of one engine is left for the next."""
    from moto.core.base_backend import BackendDict
    from moto.ec2.models import ec2_backends
    from moto.sqs.models import sqs_backends

    with LocalEngine(scenarios=["health-abuse"]) as engine:
        assert ec2_backends in BackendDict._instances
        assert sqs_backends in BackendDict._instances  # the stack's queues
        vpcs = engine.observe()
        assert vpcs
        assert set(ec2_backends[ACCOUNT]) >= {"us-east-1", "eu-west-1"}
    assert BackendDict._instances == []
    assert dict(ec2_backends) == {}


def test_moto_random_state_round_trips() -> None:
    from moto.moto_api._internal import mock_random

    mock_random.seed(7)
    state = mock_random.getstate()
    drawn = [mock_random.get_random_hex(8), str(mock_random.uuid4())]
    mock_random.setstate(state)
    assert [mock_random.get_random_hex(8), str(mock_random.uuid4())] == drawn


def test_ssm_parameter_dicts_need_their_own_reduction() -> None:
    """moto's ``ParameterDict`` cannot be copied or pickled as a ``defaultdict`` (its
    constructor takes the account and region); the snapshot's reduction keeps it whole."""
    from moto.ssm.models import ParameterDict

    parameters = ParameterDict(ACCOUNT, "us-east-1")
    parameters["/a"].append("v1")
    parameters.latest_amis_loaded = True
    with pytest.raises(TypeError):
        copy.deepcopy(parameters)
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(parameters))
    copied = _round_trip({"parameters": parameters})["parameters"]
    assert type(copied) is ParameterDict and copied is not parameters
    assert dict(copied) == dict(parameters) and copied["/a"] == ["v1"]
    assert (copied.account_id, copied.region_name, copied.latest_amis_loaded) == (
        ACCOUNT, "us-east-1", True)
    assert copied["/b"] == []  # still a defaultdict of versions


def _round_trip(attributes: dict[str, Any], refused: dict[int, str] | None = None) -> Any:
    from moto import mock_aws

    from opsflow.engine import cures

    with mock_aws():
        clock = cures.install()
        kept = snapshot.take(clock, attributes, refused or {}, busy=[])
        return snapshot.restore(kept, clock)


def test_locks_are_new_and_shared_as_before() -> None:
    lock = threading.RLock()
    condition = threading.Condition(lock)
    copied = _round_trip({"lock": lock, "condition": condition})
    assert copied["lock"] is not lock
    assert copied["condition"]._lock is copied["lock"]
    with copied["condition"]:
        copied["condition"].notify_all()  # owned through the new lock


def test_state_it_cannot_separate_is_refused() -> None:
    held: list[str] = []

    def closure() -> list[str]:
        return held

    with pytest.raises(snapshot.SnapshotError, match="closes over a list"):
        _round_trip({"hook": closure})
    owner = object()
    with pytest.raises(snapshot.SnapshotError, match="the engine"):
        _round_trip({"back": [owner]}, refused={id(owner): "the engine"})
    from moto import mock_aws

    from opsflow.engine import cures

    with mock_aws(), pytest.raises(snapshot.SnapshotError, match="in progress"):
        snapshot.take(cures.install(), {}, {}, busy=[0, 1])


def test_the_clock_is_restored_with_its_start_and_elapsed_time(built: None) -> None:
    from moto import mock_aws

    from opsflow.engine import cures

    clock = cures.install()
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    try:
        clock.reset(start)
        clock.advance(90.5)
        with mock_aws():
            kept = snapshot.take(clock, {}, {}, busy=[])
            clock.reset(DEFAULT_START)
            snapshot.restore(kept, clock)
        assert clock.state() == (start, 90.5)
        with LocalEngine(scenarios=["health-abuse"]) as engine:  # built on the default start
            assert not engine.restored
            assert engine.clock.state() == (DEFAULT_START, 0.0)
    finally:
        clock.reset(DEFAULT_START)


# ---------------------------------------------------------------- on disk, for new processes


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache folder of the test's own (the project's entries linked in, but no snapshots),
    and a process that has no snapshot in memory but reads those on disk."""
    from opsflow.engine import cache

    for entry in cache.DIR.glob("*"):
        if entry.name != "snapshots":
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.setattr(cache, "DIR", tmp_path)
    snapshot.forget()
    monkeypatch.setattr(snapshot, "_disk_read", True)
    yield tmp_path / "snapshots"
    snapshot.forget()


def test_a_snapshot_written_to_disk_restores_the_engine_a_build_makes(disk: Path) -> None:
    """What a new process reads (``snapshot.dump`` and ``load``): every object the snapshot
    keeps by reference found again by name (moto's backend dictionaries, functions), rebuilt
    from its code (a closure-free lambda of moto's: SSM's tag table's factory) or from its bytes
    (the KMS keys' private keys), and locks made new."""
    with LocalEngine() as first:
        assert not first.restored
        account, runs = describe(first), _runs(first)
        build = snapshot.key(first.scenarios, {}, first.template)
        kept = snapshot.saved(build)
        data = snapshot.dump(kept, first.clock)
        assert data is not None
        recipes = pickle.loads(data)[2]
        assert {recipe[0] for recipe in recipes} >= {
            "clock", "backend", "template", "lock", "function", "code", "private key"}
        loaded = snapshot.load(data, first.clock)
        assert len(loaded.shared) == len(kept.shared) and loaded.blob == kept.blob
    snapshot.forget()
    snapshot.keep(build, loaded)
    with LocalEngine() as second:
        assert second.restored
        assert describe(second) == account
        assert _runs(second) == runs


_PORTRAIT = """
import json
from opsflow.engine import snapshot
from opsflow.engine.runner import LocalEngine
from tests.unit.test_snapshot import _runs, describe
with LocalEngine() as engine:
    portrait = {"restored": engine.restored, "from disk": engine.restored_from_disk,
                "disk": snapshot.disk_note, "account": repr(describe(engine))}
    _runs(engine)  # what a process's first runs load (clients, models), as a build loads it
with LocalEngine() as engine:
    portrait["again"] = engine.restored and not engine.restored_from_disk
    portrait["runs"] = repr(_runs(engine))
print(json.dumps(portrait))
"""


@pytest.mark.heavy
def test_a_new_process_restores_the_snapshot_an_earlier_one_left_on_disk(disk: Path) -> None:
    """Two processes of the same code, with different hash seeds: the first builds and leaves
    its snapshot on disk, the second restores it and shows the same account. Each then runs
    every scenario on an engine restored from the snapshot it holds (the first's taken, the
    second's read from disk), once its first runs have loaded what a build loads (a cold
    process's first run interleaves its concurrent branches differently): the same runs."""
    import subprocess
    import sys

    from opsflow import template as cfn

    portraits, entries = [], []
    for seed in ("1", "2"):
        env = {**os.environ, "OPSFLOW_CACHE_DIR": str(disk.parent), "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", _PORTRAIT], env=env, cwd=cfn.ROOT,
                              capture_output=True, text=True, check=True, timeout=300)
        portraits.append(json.loads(done.stdout.splitlines()[-1]))
        entries.append((portraits[-1]["disk"], sorted(p.name for p in disk.glob("*"))))
    built, restored = portraits
    assert (built["restored"], built["from disk"]) == (False, False), entries
    assert (restored["restored"], restored["from disk"]) == (True, True), entries
    assert built["again"] and restored["again"]
    assert restored["account"] == built["account"]
    assert restored["runs"] == built["runs"], _first_difference(built["runs"], restored["runs"])
    assert len(list(disk.glob("*.pickle"))) == 1


def _first_difference(left: str, right: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
              min(len(left), len(right)))
    return f"at {at}: built ...{left[max(0, at - 300):at + 300]!r} restored ...{right[max(0, at - 300):at + 300]!r}"


def test_a_snapshot_on_disk_is_read_by_the_same_code_and_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry's name hashes the content of every source file (not its time), the pins, the
    versions of the packages whose objects it holds, and moto's environment."""
    import importlib.metadata
    import shutil

    from opsflow import template as cfn

    for name in ("template.yaml", "pyproject.toml"):
        shutil.copy(cfn.ROOT / name, tmp_path / name)
    for root in ("opsflow", "functions", "workflows", "statemachines"):
        shutil.copytree(cfn.ROOT / root, tmp_path / root,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cfn, "ROOT", tmp_path)
    build = ("health-abuse",), (), "digest"

    def path() -> Path:
        snapshot.code_digest.cache_clear()
        return snapshot.disk_path(build)

    first = path()
    assert path() == first
    handler = next((tmp_path / "functions").rglob("*.py"))
    os.utime(handler, ns=(1, 1))
    assert path() == first  # only the time changed
    handler.write_text(handler.read_text() + "\n")
    edited = path()
    assert edited != first
    monkeypatch.setenv("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    assert path() not in (first, edited)
    monkeypatch.delenv("MOTO_ALLOW_NONEXISTENT_REGION")
    assert path() == edited
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.0" if name == "moto" else real(name))
    assert path() != edited
    monkeypatch.undo()
    snapshot.code_digest.cache_clear()
    assert snapshot.disk_path(build) != edited  # the project's own tree again


@pytest.mark.parametrize("damage", ["garbage", "truncated blob", "unknown module"])
def test_a_damaged_snapshot_on_disk_is_deleted_and_the_engine_builds(
    disk: Path, damage: str
) -> None:
    with LocalEngine(scenarios=["region-failover"]) as first:
        account = describe(first)
        build = snapshot.key(first.scenarios, {}, first.template)
        path = snapshot.disk_path(build)
    assert path.exists()
    form, nodes, recipes, blob = pickle.loads(path.read_bytes())
    if damage == "garbage":
        path.write_bytes(b"not a snapshot")
    elif damage == "truncated blob":
        path.write_bytes(pickle.dumps((form, nodes, recipes, blob[: len(blob) // 2])))
    else:
        recipes = [("backend", "moto.nowhere", "backends") if r[0] == "backend" else r
                   for r in recipes]
        path.write_bytes(pickle.dumps((form, nodes, recipes, blob)))
    snapshot._saved.clear()  # a new process: nothing in memory
    with LocalEngine(scenarios=["region-failover"]) as again:
        assert not again.restored
        assert describe(again) == account
    assert pickle.loads(path.read_bytes())[0] == snapshot.DISK_FORMAT  # the build's own again
    snapshot._saved.clear()
    with LocalEngine(scenarios=["region-failover"]) as third:
        assert third.restored_from_disk
        assert describe(third) == account


def test_forgetting_snapshots_ignores_those_on_disk(disk: Path) -> None:
    """A process that forgets builds again without reading the entry on disk, and leaves that
    entry (the same build of the same code) as it was instead of writing it again."""
    with LocalEngine(scenarios=["region-failover"]):
        pass
    (entry,) = disk.glob("*.pickle")
    written = entry.read_bytes()
    snapshot.forget()
    with LocalEngine(scenarios=["region-failover"]) as engine:
        assert not engine.restored
    assert snapshot.disk_note == f"{entry.name} already on disk"
    assert entry.read_bytes() == written


def test_snapshots_on_disk_are_bounded(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The most recently used are kept: one read again outlives one written after it."""
    monkeypatch.setattr(snapshot, "DISK_LIMIT", 2)

    def engine(maximum: str) -> LocalEngine:
        return LocalEngine(scenarios=["health-abuse"], parameters={"MaxInstances": maximum})

    paths = {}
    for maximum in ("21", "22"):
        with engine(maximum) as built:
            paths[maximum] = snapshot.disk_path(snapshot.key(
                built.scenarios, built.parameter_overrides, built.template))
    snapshot._saved.clear()  # a new process
    with engine("21") as again:
        assert again.restored_from_disk
    with engine("23") as built:
        paths["23"] = snapshot.disk_path(snapshot.key(
            built.scenarios, built.parameter_overrides, built.template))
    assert sorted(disk.glob("*.pickle")) == sorted([paths["21"], paths["23"]])


def _factory() -> Any:
    return lambda: "made"


def test_each_kind_of_object_kept_by_reference_is_found_again_from_disk() -> None:
    """How ``snapshot.dump`` names what a snapshot keeps by reference, for a new process: the
    clock and functions themselves, a lambda rebuilt from its code (with its immutable cells),
    locks new and of their kind, and every key type by its DER bytes; anything else is not
    written."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from opsflow.engine import cures

    clock = cures.install()
    limit = 7

    def scaled(value: int) -> int:
        return value * limit

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=1024),
            ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
    keys += [key.public_key() for key in keys]
    shared = [clock, threading.Lock(), threading.RLock(), snapshot.key, _factory(), scaled, *keys]
    data = snapshot.dump(snapshot.Snapshot(b"", shared), clock)
    assert data is not None
    found = snapshot.load(data, clock).shared
    assert found[0] is clock and found[3] is snapshot.key
    assert type(found[1]) is type(shared[1]) and found[1] is not shared[1]
    assert type(found[2]) is type(shared[2]) and found[2] is not shared[2]
    assert found[4] is not shared[4] and found[4]() == "made"
    assert found[5](3) == 21 and found[5].__qualname__ == scaled.__qualname__
    for original, copied in zip(keys[:3], found[6:9], strict=True):
        assert copied.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8,
                                    ser.NoEncryption()) == original.private_bytes(
            ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    for original, copied in zip(keys[3:], found[9:], strict=True):
        assert copied.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo) == (
            original.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo))
    assert snapshot.dump(snapshot.Snapshot(b"", [clock, object()]), clock) is None
