"""Hypothesis profiles, the engines the properties run on, and the tally of what they saw.

Profiles (``HYPOTHESIS_PROFILE``, default ``ci``):

* ``ci``: a fixed seed (``derandomize=True``) and few examples, so ``make test`` is quick and
  the same on every machine;
* ``fuzz``: fresh randomness and more than a thousand events across the runbooks (``make fuzz``).

A test asks :func:`examples` for its count, by kind, so both profiles scale every test alike.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.property import harness

COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, database=None, max_examples=20, **COMMON)
settings.register_profile("fuzz", derandomize=False, max_examples=300, **COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

EXAMPLES = {
    "ci": {"parse": 60, "run": 20, "cli": 3},
    "fuzz": {"parse": 600, "run": 350, "cli": 25},
}
"""Examples per test, by kind: ``parse`` (pure parser), ``run`` (a whole run on a shared
engine), ``cli`` (``opsflow run`` in-process, a fresh engine each)."""


def examples(kind: str) -> int:
    return EXAMPLES.get(PROFILE, EXAMPLES["ci"])[kind]


EXECUTION = "arn:aws:states:us-east-1:{account}:execution:opsflow-{machine}:property"


@pytest.fixture(scope="session")
def deployed_settings() -> dict[str, Any]:
    """Each runbook's settings exactly as its first task receives them on the local engine
    (the template's parameters through DefinitionSubstitutions), and its execution ARN."""
    from opsflow.engine.runner import ACCOUNT, LocalEngine
    from workflows.catalog import SCENARIOS

    found: dict[str, Any] = {}
    with LocalEngine() as engine:
        for scenario in SCENARIOS.values():
            machine = engine.machines[scenario.state_machine]
            definition = json.loads(engine.stack.definition(machine))
            first = definition["States"][definition["States"]["Detect: Receive event"]["Next"]]
            found[scenario.id] = {
                "settings": first["Parameters"]["settings"],
                "execution": EXECUTION.format(account=ACCOUNT, machine=scenario.state_machine),
            }
    return found


class Bench:
    """A local engine for one runbook, shared by the examples of a test. Each example starts
    with no delivery records (so a mutated sample is not a mere duplicate), and an example that
    changed the account leaves it for a fresh engine: the next one meets the world as built."""

    def __init__(self, scenario: str, parameters: dict[str, str] | None = None) -> None:
        self.scenario = scenario
        self.parameters = dict(parameters or {})
        """Template parameter overrides of the engine (e.g. the failover's data tier)."""
        self._engine: Any = None
        self.started = 0

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from opsflow.engine.runner import LocalEngine

            self._engine = LocalEngine(scenarios=[self.scenario],
                                       parameters=self.parameters).__enter__()
            self.started += 1
        return self._engine

    def run(self, event: Any) -> Any:
        engine = self.engine
        self._forget_deliveries(engine)
        execution = engine.run(self.scenario, event)
        if any(not harness.delivery_record(e) for e in execution.effects):
            self.close()
        return execution

    @staticmethod
    def _forget_deliveries(engine: Any) -> None:
        from opsflow.engine import boundary

        with boundary.bypass():
            ddb = engine.client("dynamodb")
            for table in engine.tables:
                for item in ddb.scan(TableName=table).get("Items", []):
                    ddb.delete_item(TableName=table, Key={"pk": item["pk"]})

    def close(self) -> None:
        if self._engine is not None:
            self._engine.__exit__(None, None, None)
            self._engine = None


@pytest.fixture
def bench_factory() -> Iterator[Any]:
    """One :class:`Bench` per test (its examples share it); two engines never overlap, since
    moto's backends are the process's."""
    benches: list[Bench] = []

    def make(scenario: str, parameters: dict[str, str] | None = None) -> Bench:
        bench = Bench(scenario, parameters)
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.close()


RUN = os.environ.get("OPSFLOW_FUZZ_RUN") or uuid.uuid4().hex
"""The session's id, for its tally: ``OPSFLOW_FUZZ_RUN`` (``make`` sets it, then prints that
session's tally), else xdist's id of the session, else a new one."""


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = getattr(session.config, "workerinput", None) or {"workerid": "main", "testrunuid": RUN}
    run = os.environ.get("OPSFLOW_FUZZ_RUN") or worker["testrunuid"]
    if sum(harness.TALLY.generated.values()):
        harness.TALLY.dump(run, worker["workerid"], PROFILE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Without xdist the session's own tally; with it, ``python -m tests.property.harness``
    (``make test``, ``make fuzz``) prints the sum of the workers'."""
    lines = harness.summary(RUN)
    if lines:
        terminalreporter.section(f"opsflow property tests (profile {PROFILE})")
        for line in lines:
            terminalreporter.write_line(line)
