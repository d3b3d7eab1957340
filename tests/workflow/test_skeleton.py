"""The runbook skeleton's wiring, from the compiled ASL: every state that runs work in a phase
has that phase's Catch, found from the chains themselves, never from a hand-kept list."""

from __future__ import annotations

from typing import Any

import pytest

from workflows import asl, runbook, sdk
from workflows.catalog import SCENARIOS

DETECT_FAILED = "Detect: Explain failure"
WORK = ("Task", "Map", "Parallel")


def compiled(scenario: str) -> dict[str, Any]:
    return asl.order_definition(SCENARIOS[scenario].definition())


def catches(state: dict[str, Any]) -> dict[str, str]:
    """Catch targets by the first error each one names."""
    return {c["ErrorEquals"][0]: c["Next"] for c in state.get("Catch", [])}


def phase(states: dict[str, Any], start: str, stop: set[str]) -> list[str]:
    """Names reachable from ``start`` over Next/Choices/Default (not Catch), not entering
    ``stop``: the states of one phase as the compiled machine has them."""
    seen: list[str] = []
    pending = [start]
    while pending:
        name = pending.pop(0)
        if name in seen or name in stop or name not in states:
            continue
        seen.append(name)
        state = states[name]
        pending += [state.get("Next"), state.get("Default")]
        pending += [choice["Next"] for choice in state.get("Choices", [])]
    return [n for n in seen if n]


def reports_failed_rollback(states: dict[str, Any], name: str) -> bool:
    """``name`` is where a failed rollback goes: the explanation from the errors, or a report
    read from the account that itself falls back to that explanation; both end ``Rollback
    failed``."""
    explain = "Rollback: Explain failure"
    if name != explain and catches(states[name]).get("States.ALL") != explain:
        return False
    return "Rollback failed" in phase(states, name, set())


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_task_of_each_phase_has_the_skeleton_catch(scenario: str) -> None:
    states = compiled(scenario)["States"]
    first_act = next(n for n in states if n.startswith("Act: ") and states[n]["Type"] in WORK
                     and n != "Act: Wait for approval")
    rollback = catches(states[first_act])["States.ALL"]
    assert rollback.startswith("Rollback: ")

    detect = phase(states, "Detect: Receive event", {"Detect: First delivery?"})
    act = phase(states, first_act, {"Act: Dry run?", rollback})
    verify = phase(states, "Verify: Start checks", {rollback, "Notify: Report mitigation"})
    verify = [n for n in verify if n != "Verify: Record verified move"]  # after it converged
    rolling_back = phase(states, rollback, {"Notify: Report rollback", "Notify: Escalate after "
                                            "failure", "Rollback: Explain failure"})
    for name in detect:
        if states[name]["Type"] in WORK:
            assert catches(states[name]).get("States.ALL") == DETECT_FAILED, name
            assert catches(states[name]).get("InvalidEvent") == "Detect: Read rejection", name
    for name in act + verify:
        if states[name]["Type"] in WORK and name.startswith(("Act: ", "Verify: ")):
            assert catches(states[name]).get("States.ALL") == rollback, name
    for name in rolling_back:
        if states[name]["Type"] in WORK and name.startswith("Rollback: "):
            target = catches(states[name]).get("States.ALL")
            assert target is not None, name
            assert reports_failed_rollback(states, target), (name, target)
    assert len(detect) >= 2 and act and verify and rolling_back


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_map_iteration_ends_before_the_run_goes_on(scenario: str) -> None:
    """Inside a Map, a task either catches its own failure into the iteration's result, or
    the Map catches it for the skeleton; either way nothing that follows races an iteration."""
    for name, state in compiled(scenario)["States"].items():
        if state["Type"] != "Map":
            continue
        inner = state["ItemProcessor"]["States"]
        for inner_name, inner_state in inner.items():
            if inner_state["Type"] == "Task":
                assert "States.ALL" in catches(inner_state), (name, inner_name)
        assert "States.ALL" in catches(state), name


def toy(extra: bool) -> runbook.Phases:
    """A minimal scenario; with ``extra``, one more detect and act task than before."""
    parse = runbook.lambda_task("Detect: Parse", "ParseFunction",
                                {"event.$": runbook.EVENT}, result_path="$.plan")
    tail = parse
    if extra:
        tail = runbook.lambda_task("Detect: Look closer", "LookFunction", {}, result_path=None)
        parse.next(tail)
    act = runbook.lambda_task("Act: Do", "DoFunction", {}, result_path="$.act")
    act_tail = act
    if extra:
        act_tail = runbook.lambda_task("Act: Do more", "MoreFunction", {}, result_path=None)
        act.next(act_tail)
    verify = runbook.verify_loop(
        wait=sdk.Wait("Verify: Wait", seconds=1),
        check=runbook.lambda_task("Verify: Check", "CheckFunction", {}, result_path="$.verify"),
        question="Verify: Done?", not_confirmed="Not done",
    )
    undo = runbook.lambda_task("Rollback: Undo", "UndoFunction", {}, result_path="$.rollback")
    return runbook.Phases(
        scenario="toy", comment="toy", detect=parse, detect_tail=tail, act=act,
        act_tail=act_tail, verify=verify, rollback=undo, rollback_tail=undo,
        rollback_escalate_from=[],
    )


def test_a_task_added_to_a_chain_gets_its_phase_catch_without_any_list() -> None:
    states = runbook.build(toy(extra=True))["States"]
    assert catches(states["Detect: Look closer"])["States.ALL"] == DETECT_FAILED
    assert catches(states["Act: Do more"])["States.ALL"] == "Rollback: Undo"
    assert catches(states["Rollback: Undo"])["States.ALL"] == "Rollback: Explain failure"
    assert states["Detect: Receive event"]["Parameters"] == {"execution.$": "$$.Execution.Name"}


def test_a_tail_that_cannot_be_reached_is_refused() -> None:
    phases = toy(extra=False)
    phases.detect_tail = runbook.lambda_task("Detect: Elsewhere", "X", {}, result_path=None)
    with pytest.raises(ValueError, match="cannot be reached"):
        runbook.build(phases)


def test_recording_a_verified_failover_never_undoes_it() -> None:
    states = compiled("region-failover")["States"]
    record = states["Verify: Record verified move"]
    assert states["Verify: In sync and healthy?"]["Default"] == "Verify: Record verified move"
    assert catches(record)["States.ALL"] == "Notify: Report mitigation"
    assert record["Next"] == "Notify: Report mitigation"
