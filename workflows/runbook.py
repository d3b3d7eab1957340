"""The runbook skeleton: detect → notify → act → verify → rollback, for every scenario.

A scenario supplies its phases as chains of states (see :class:`Phases`); :func:`build` wires
them into one state machine with the parts every runbook shares:

* an invalid event ends in ``Invalid event`` (``Runbook.InvalidEvent``) with the reason as cause;
* a failure while detecting (after retries) notifies and ends ``Runbook.Escalated``;
* duplicate deliveries stop at ``Duplicate delivery`` (conditional write of the plan's
  ``dedupeKey``), skipped for dry runs and manual reruns that ask for it;
* ``plan.actionable == false`` notifies and ends ``No action``;
* ``plan.escalate`` (a guard the scenario computed, e.g. a blast-radius cap) notifies and ends
  ``Runbook.Escalated`` without acting;
* the kill switch (an SSM parameter set to ``on``) turns the act into a notification;
* the detection is announced before acting; a dry run stops after the act phase, which the
  scenario runs with its APIs' DryRun; any act or verify failure goes to the scenario's rollback
  chain, whose last state must leave ``$.rollback`` with ``cause`` and ``notice``.

Data contract between phases: the first state replaces the execution's input (the event,
whatever JSON it is) with a small object, so a task can always add its result to it and a Catch
can always record an error (neither can be applied to an input that is not an object). The
first task of the detect chain (:func:`read_event`) reads the event from the context object
(:data:`EVENT`) and replaces the state with ``{"plan": ...}``: the event stays the execution's
input, and no state carries it (Step Functions holds a state's data to 256 KiB, and a rejected
event's error must fit beside it). The detect chain leaves ``$.plan`` with
``scenario``, ``dryRun``,
``actionable``, optionally ``dedupeKey`` and ``escalate``, and ``notices`` — a map of notice
objects ``{"subject", "message"}`` where ``message`` is an SNS JSON message structure
(``default``, ``sms``, ``email``). Every notification the skeleton sends reads one of them.
The rollback chain leaves ``$.rollback`` with ``cause``, ``notice`` and, when it read the account,
``complete`` (false when something is left changed: the run escalates instead of ending
``Runbook.RolledBack``).

Error handling follows from the structure: every Task, Map and Parallel state reachable from a
phase's head gets that phase's Catch (see :func:`phase_states`); states inside a Map's or
Parallel's iterator are covered by the Catch on the Map or Parallel state itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stepfunctions.steps import ChoiceRule, states

from workflows import sdk

SNS_PUBLISH = "arn:aws:states:::sns:publish"
DDB_PUT_ITEM = "arn:aws:states:::dynamodb:putItem"
SSM_GET_PARAMETER = "arn:aws:states:::aws-sdk:ssm:getParameter"

ALERT_TOPIC = "${AlertTopicArn}"
DEDUPE_TABLE = "${DedupeTableName}"
KILL_SWITCH = "${KillSwitchParameterName}"

INVALID_EVENT = "InvalidEvent"
EVENT = "$$.Execution.Input"
"""Where the first task reads the event as delivered: the execution's input, from the context
object, so no state ever carries it (an event near 256 KiB leaves room for the plan, and for the
error a rejection adds)."""
EXECUTION_ID = "$$.Execution.Id"
THROTTLED = "Throttled"

LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def standard_retries() -> list[sdk.Retry]:
    """Retries for transient errors: Lambda service hiccups and throttled AWS APIs."""
    return [
        sdk.Retry(
            error_equals=[THROTTLED],
            interval_seconds=2,
            max_attempts=5,
            backoff_rate=2.0,
            max_delay_seconds=60,
            jitter_strategy="FULL",
        ),
        sdk.Retry(
            error_equals=LAMBDA_TRANSIENT,
            interval_seconds=2,
            max_attempts=3,
            backoff_rate=2.0,
        ),
    ]


def lambda_task(
    name: str,
    function: str,
    payload: dict[str, Any],
    result_path: str | None,
    comment: str | None = None,
    output_path: str | None = None,
    result_selector: dict[str, Any] | None = None,
) -> sdk.Task:
    """A Lambda task whose result is the function's own return value (reshaped by
    ``result_selector`` when given).

    ``function`` is the template's logical ID; the ASL names it as ``${<LogicalId>Arn}``.
    The payload carries the execution's ID (``executionId``, unless ``execution`` already is
    that ID): every handler logs it as its correlation ID (``runbook_kit.telemetry``).
    """
    if payload.get("execution.$") != EXECUTION_ID:
        payload = {**payload, "executionId.$": EXECUTION_ID}
    task = sdk.Task(
        name,
        resource="${" + function + "Arn}",
        parameters=payload,
        result_path=result_path,
        comment=comment,
    )
    if output_path is not None:
        task.fields["output_path"] = output_path
    if result_selector is not None:
        task.fields["result_selector"] = result_selector
    for retry in standard_retries():
        task.add_retry(retry)
    return task


def read_event(name: str, function: str, settings: dict[str, str]) -> sdk.Task:
    """The first task of every detect chain: ``function`` reads the event (the execution's
    input, :data:`EVENT`) with the runbook's settings and the execution's ID, and its result,
    the plan, replaces the state (``{"plan": ...}``). No state carries the event, so an event
    near Step Functions' 256 KiB leaves room for the plan, or for the error that rejects it.
    """
    return lambda_task(
        name,
        function,
        {"event.$": EVENT, "settings": dict(settings), "execution.$": EXECUTION_ID},
        result_path="$",
        result_selector={"plan.$": "$"},
    )


def notify(name: str, notice_path: str) -> sdk.Task:
    """Publish the notice at ``notice_path`` (SMS-sized text and the full message in one publish).

    A notification that cannot be sent after retries never blocks the runbook: the failure is
    kept at ``$.notifyError`` and the run goes on.
    """
    task = sdk.Task(
        name,
        resource=SNS_PUBLISH,
        parameters={
            "TopicArn": ALERT_TOPIC,
            "Subject.$": f"{notice_path}.subject",
            "MessageStructure": "json",
            "Message.$": f"States.JsonToString({notice_path}.message)",
        },
        result_path=None,
    )
    task.add_retry(
        sdk.Retry(
            error_equals=["SNS.ThrottledException", "SNS.InternalErrorException", *LAMBDA_TRANSIENT],
            interval_seconds=1,
            max_attempts=3,
            backoff_rate=2.0,
        )
    )
    return task


def explain_and_escalate(
    explain: str,
    cause: str,
    notify_as: str,
    subject: str,
    end: sdk.Fail,
    error: str | None = None,
    function_cause: str | None = None,
) -> states.State:
    """``explain`` puts ``cause`` (an intrinsic expression) at ``$.escalation.cause``, ``notify_as``
    sends it with ``subject`` (the cause in full by e-mail; an SMS of the subject alone, since a
    cause may hold a whole error), and the run ends at ``end``. Returns the first state.

    With ``error`` (the path a Catch put an error at) and ``function_cause``: when the error's
    cause is a Lambda function's error document (``{"errorMessage": ..., "errorType": ...,
    "stackTrace": ...}``), ``explain`` is a Choice: the document is read (at ``<error>Detail``)
    and ``function_cause``, which may quote ``<error>Detail.errorMessage``, explains it: the
    message, not the document with its stack trace; any other error is explained by ``cause``."""

    def explained(name: str, text: str) -> sdk.Pass:
        return sdk.Pass(
            name,
            parameters={
                "cause.$": text,
                "message": {"default.$": text, "sms": f"{subject} (details by e-mail)"},
            },
            result_path="$.escalation",
        )

    phase = explain.split(":", 1)[0]
    routed = error is not None and function_cause is not None
    plain = explained(f"{phase}: Explain other error" if routed else explain, cause)
    notice = sdk.Task(
        notify_as,
        resource=SNS_PUBLISH,
        parameters={
            "TopicArn": ALERT_TOPIC,
            "Subject": subject,
            "MessageStructure": "json",
            "Message.$": "States.JsonToString($.escalation.message)",
        },
        result_path=None,
    )
    plain.next(notice)
    notice.next(end)
    _tolerate_notify_failure(notice, end)
    if error is None or function_cause is None:
        return plain
    from_function = sdk.Choice(explain)
    read = sdk.Pass(
        f"{phase}: Read function error",
        parameters={"detail.$": f"States.StringToJson({error}.Cause)"},
        result_path=f"{error}Detail",
    )
    # The document is read only when it is whole (a cause cut short is no JSON: said as is).
    from_function.add_choice(
        ChoiceRule.And([
            ChoiceRule.IsPresent(f"{error}.Cause", True),
            ChoiceRule.IsString(f"{error}.Cause", True),
            ChoiceRule.StringMatches(f"{error}.Cause", '{"error*}'),
        ]),
        read,
    )
    from_function.default_choice(plain)
    function_explained = explained(f"{phase}: Explain function error",
                                   function_cause.replace(f"{error}Detail.", f"{error}Detail.detail."))
    read.next(function_explained)
    function_explained.next(notice)
    return from_function


def _tolerate_notify_failure(task: sdk.Task, then: Any) -> None:
    task.add_catch(sdk.Catch(error_equals=["States.ALL"], next_step=then, result_path="$.notifyError"))


def outcome(name: str, value: str, extra: dict[str, Any] | None = None) -> sdk.Pass:
    """A terminal success state whose output is the run's outcome."""
    parameters: dict[str, Any] = {
        "outcome": value,
        "scenario.$": "$.plan.scenario",
        "summary.$": "$.plan.summary",
    }
    parameters.update(extra or {})
    return sdk.Pass(name, parameters=parameters)


@dataclass
class VerifyLoop:
    """Check, and while not converged wait and check again, at most ``$.verify.maxPolls`` times.

    The check task writes ``$.verify`` with ``attempt`` (incremented), ``maxPolls``,
    ``converged``, ``summary`` and, once converged, the ``notice`` of the mitigation.
    """

    start: sdk.Pass
    check: sdk.Task
    done: sdk.Choice
    gave_up: sdk.Pass


def verify_loop(
    wait: sdk.Wait,
    check: sdk.Task,
    question: str,
    not_confirmed: str,
    start: dict[str, Any] | None = None,
) -> VerifyLoop:
    """The verify phase every runbook shares: ``Verify: Start checks`` → ``wait`` → ``check`` →
    ``question`` (converged: go on; attempts left: wait again; else ``Verify: Give up``, which
    sets ``Runbook.VerifyTimedOut`` with ``not_confirmed`` and the last summary as the cause)."""
    begin = sdk.Pass(
        "Verify: Start checks", result=start or {"attempt": 0}, result_path="$.verify"
    )
    done = sdk.Choice(question)
    gave_up = sdk.Pass(
        "Verify: Give up",
        parameters={
            "Error": "Runbook.VerifyTimedOut",
            "Cause.$": f"States.Format('{not_confirmed} after {{}} checks: {{}}', "
            "$.verify.attempt, $.verify.summary)",
        },
        result_path="$.error",
    )
    begin.next(wait)
    wait.next(check)
    check.next(done)
    not_converged = ChoiceRule.BooleanEquals("$.verify.converged", False)
    done.add_choice(
        ChoiceRule.And([
            not_converged,
            ChoiceRule.NumericGreaterThanEqualsPath("$.verify.attempt", "$.verify.maxPolls"),
        ]),
        gave_up,
    )
    done.add_choice(not_converged, wait)
    return VerifyLoop(start=begin, check=check, done=done, gave_up=gave_up)


@dataclass
class Phases:
    """What a scenario contributes; each field is the head of a chain of states.

    ``detect``: first state of the detect chain, which reads the event at :data:`EVENT`;
    ``detect_tail``: its last state (the skeleton continues after it). ``act``/``act_tail``
    likewise (a Choice as tail continues by its default); ``verify``: the scenario's
    :func:`verify_loop`; ``verified``/``verified_tail``: optional states run once verify has
    converged, before the mitigation is reported (e.g. recording it); a failure there is kept at
    ``$.verifiedError`` and never undoes the verified change. ``rollback``/``rollback_tail``: the
    compensation chain, which leaves ``$.rollback.cause`` and ``$.rollback.notice``;
    ``rollback_escalate_from``: states of the rollback chain that end the run
    ``Runbook.Escalated`` instead (e.g. a "hold" mode, or a scenario whose acts cannot be undone:
    its ``rollback_tail`` is None). ``rollback_report``: an optional Task that reads what a
    failed rollback left (``$.rollbackError`` says why it failed) and leaves ``$.rollback`` like
    the rollback chain; every rollback failure goes there, and the run ends ``Runbook.Escalated``
    (if the report itself fails, the cause is explained from the errors alone).

    The skeleton finds each phase's Tasks itself by walking the chain from its head
    (:func:`phase_states`), so a task cannot be added without its phase's error handling.
    """

    scenario: str
    comment: str
    detect: Any
    detect_tail: Any
    act: Any
    act_tail: Any
    verify: VerifyLoop
    rollback: Any
    rollback_tail: Any | None
    rollback_escalate_from: list[Any]
    rollback_report: Any | None = None
    verified: Any | None = None
    verified_tail: Any | None = None
    timeout_seconds: int = 3600
    approval: bool = False
    """Offer a human approval step before acting (taken when ``$.plan.requireApproval`` is true):
    the request carries signed approve/reject links for its task token; approving goes on,
    rejecting (``Runbook.Rejected``) or no answer within ``$.plan.approvalTimeoutSeconds``
    escalates without acting. The scenario's plan supplies ``notices.approval``."""


CATCHABLE = (sdk.Task, sdk.Map, states.Parallel)
"""States that run work and can fail with the work's error (a Catch belongs on them)."""


def successors(state: Any) -> list[Any]:
    """The states ``state`` can go to in its own graph: Next, Choice branches and default, and
    Catch targets (never into a Map's or Parallel's iterator, which is a graph of its own)."""
    found: list[Any] = []
    if isinstance(state, states.Choice):
        found += [target for _, target in state.choices]
        if state.default is not None:
            found.append(state.default)
    elif getattr(state, "next_step", None) is not None:
        found.append(state.next_step)
    found += [catch.next_step for catch in getattr(state, "catches", [])]
    return found


def phase_states(head: Any, stop: Iterable[Any] = ()) -> list[Any]:
    """Every state reachable from ``head`` without entering ``stop`` (the heads of other
    phases), in the order first reached. Call it before the skeleton wires the phase onward."""
    stops = {id(state) for state in stop if state is not None}
    seen: set[int] = set()
    order: list[Any] = []
    pending = [head]
    while pending:
        state = pending.pop(0)
        if state is None or id(state) in seen or id(state) in stops:
            continue
        seen.add(id(state))
        order.append(state)
        pending += successors(state)
    return order


def _catchable(found: list[Any]) -> list[Any]:
    return [state for state in found if isinstance(state, CATCHABLE)]


def _phase(name: str, head: Any, tail: Any, stop: Iterable[Any]) -> list[Any]:
    found = phase_states(head, stop)
    if tail is not None and all(state is not tail for state in found):
        raise ValueError(f"{name}: {tail.state_id!r} cannot be reached from {head.state_id!r}")
    return _catchable(found)


def _continue(state: Any, then: Any) -> None:
    """Go on from ``state`` to ``then`` (a Choice goes on by its default)."""
    if isinstance(state, states.Choice):
        state.default_choice(then)
    else:
        state.next(then)


@dataclass
class Settled:
    """A Map whose iterations never fail (see :func:`settle_each_item`)."""

    collect: sdk.Pass | None
    """Gathers the failures at ``failures_path`` (None when the Map's ResultSelector does)."""
    done: sdk.Choice
    """Every item succeeded? Its default is the way on; a failure goes to ``first_failure``."""
    first_failure: sdk.Pass
    """Puts the first item's failure (``Error``, ``Cause`` and the item's ``item`` fields) at
    the chosen error path; ``.next()`` it to where failures go."""


RESULTS_SELECTOR = {"results.$": "$[*].result", "failures.$": "$[*].failure"}
"""A settled Map's result when it selects (``failures_path=None``): what each iteration left at
``$.result``, and each failed iteration's failure. Nothing else of an iteration's state (its
input, repeated in every iteration) is kept."""


def settle_each_item(
    map_state: sdk.Map,
    keep: str,
    item: dict[str, Any],
    collect: str | None,
    question: str,
    read: str,
    failures_path: str | None,
    error_path: str,
) -> Settled:
    """Make every iteration of ``map_state`` end, even a failing one, before the run goes on.

    When one iteration of a Map fails, Step Functions fails the Map at once while the other
    iterations' calls are still in flight; whatever runs next (a rollback, a report) would race
    them. Here every Task of the iterator catches its own failure into ``keep`` (a Pass that
    records ``item`` and the error at ``$.failure``), so the Map ends only when every iteration
    has; then ``question`` sends the run on (default) or, if any item failed, to ``read``, which
    puts the first failure at ``error_path``. The Map's ResultPath must be set.

    With ``failures_path``, the Map's result is every iteration's output, and ``collect`` (a
    Pass) gathers the failures there. Without (``failures_path=None``, ``collect=None``), the
    Map selects its result (:data:`RESULTS_SELECTOR`): each iteration reports at ``$.result``,
    and the result is ``{"results": [...], "failures": [...]}``, so an iteration's input is
    never copied into the state (a Map over many items stays small).
    """
    results = map_state.fields.get("result_path")
    if not results:
        raise ValueError(f"{map_state.state_id}: settle_each_item needs the Map's ResultPath")
    if (failures_path is None) != (collect is None):
        raise ValueError(f"{map_state.state_id}: give both collect and failures_path, or neither")
    kept = sdk.Pass(
        keep,
        parameters={**item, "Error.$": "$.failure.Error", "Cause.$": "$.failure.Cause"},
        result_path="$.failure",
    )
    for state in _catchable(phase_states(map_state.iterator)):
        state.add_catch(
            sdk.Catch(error_equals=["States.ALL"], next_step=kept, result_path="$.failure")
        )
    done = sdk.Choice(question)
    gather = None
    if failures_path is None:
        map_state.fields["result_selector"] = dict(RESULTS_SELECTOR)
        failures_path = f"{results}.failures"
        map_state.next(done)
    else:
        gather = sdk.Pass(
            str(collect), input_path=f"{results}[*].failure", result_path=failures_path
        )
        map_state.next(gather)
        gather.next(done)
    first = sdk.Pass(read, input_path=f"{failures_path}[0]", result_path=error_path)
    done.add_choice(ChoiceRule.IsPresent(f"{failures_path}[0]", True), first)
    return Settled(collect=gather, done=done, first_failure=first)


def build(p: Phases) -> dict[str, Any]:
    """Wire a scenario's phases into the full runbook and return the ASL definition."""
    # Each phase's states, found from the chains as the scenario wired them.
    other_heads = [p.act, p.verify.start, p.rollback, p.rollback_report, p.verified]
    detect_states = _phase("detect", p.detect, p.detect_tail, other_heads)
    act_states = _phase("act", p.act, p.act_tail, [p.rollback, p.verify.start])
    verify_states = _phase("verify", p.verify.start, p.verify.done, [p.rollback])
    verified_states = (
        _phase("verified", p.verified, p.verified_tail, [p.rollback])
        if p.verified is not None
        else []
    )
    rollback_states = _phase("rollback", p.rollback, p.rollback_tail, [p.rollback_report])
    report_states = (
        _phase("rollback report", p.rollback_report, None, [])
        if p.rollback_report is not None
        else []
    )

    # Terminal states.
    invalid = sdk.Fail(
        "Invalid event", error="Runbook.InvalidEvent", cause_path="$.error.detail.errorMessage"
    )
    explain_invalid = sdk.Pass(
        "Detect: Read rejection",
        parameters={"detail.$": "States.StringToJson($.error.Cause)"},
        result_path="$.error",
    )
    explain_invalid.next(invalid)

    escalated = sdk.Fail("Escalated", error="Runbook.Escalated", cause_path="$.escalation.cause")
    rolled_back = sdk.Fail("Rolled back", error="Runbook.RolledBack", cause_path="$.rollback.cause")

    # The input may be any JSON (an array, a string, null): the state starts as an object a
    # task can add its result to and a Catch its error to; the first task reads the event from
    # the context object (EVENT).
    receive = sdk.Pass("Detect: Receive event", parameters={"execution.$": "$$.Execution.Name"})
    receive.next(p.detect)

    # A failure while detecting: explain and escalate.
    detect_failed = explain_and_escalate(
        "Detect: Explain failure",
        "States.Format('Detection failed ({}): {}. Nothing was changed.', "
        "$.error.Error, $.error.Cause)",
        "Notify: Detection failed",
        f"opsflow {p.scenario}: detection failed, nothing changed",
        escalated,
        error="$.error",
        function_cause="States.Format('Detection failed ({}): {}. Nothing was changed.', "
        "$.error.Error, $.errorDetail.errorMessage)",
    )

    for task in detect_states:
        task.add_catch(
            sdk.Catch(error_equals=[INVALID_EVENT], next_step=explain_invalid, result_path="$.error")
        )
        task.add_catch(
            sdk.Catch(error_equals=["States.ALL"], next_step=detect_failed, result_path="$.error")
        )

    # Duplicate delivery.
    duplicate = outcome("Duplicate delivery", "no-action", {"reason": "duplicate-delivery"})
    record_delivery = sdk.Task(
        "Detect: Record delivery",
        resource=DDB_PUT_ITEM,
        parameters={
            "TableName": DEDUPE_TABLE,
            "Item": {
                "pk": {"S.$": "$.plan.dedupeKey"},
                "execution": {"S.$": "$$.Execution.Id"},
                "expiresAt": {"N.$": "States.Format('{}', $.plan.dedupeExpiresAt)"},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        },
        result_path=None,
    )
    record_delivery.add_retry(
        sdk.Retry(
            error_equals=[
                "DynamoDB.ProvisionedThroughputExceededException",
                "DynamoDB.ThrottlingException",
                "DynamoDB.InternalServerErrorException",
            ],
            interval_seconds=1,
            max_attempts=4,
            backoff_rate=2.0,
        )
    )
    record_delivery.add_catch(
        sdk.Catch(
            error_equals=["DynamoDB.ConditionalCheckFailedException"],
            next_step=duplicate,
            result_path="$.duplicate",
        )
    )
    record_delivery.add_catch(
        sdk.Catch(error_equals=["States.ALL"], next_step=detect_failed, result_path="$.error")
    )
    check_duplicate = sdk.Choice("Detect: First delivery?")
    _continue(p.detect_tail, check_duplicate)

    # Nothing to do.
    no_action = outcome("No action", "no-action", {"reason": "nothing-to-do"})
    notify_no_action = notify("Notify: Nothing to do", "$.plan.notices.noAction")
    notify_no_action.next(no_action)
    _tolerate_notify_failure(notify_no_action, no_action)
    anything = sdk.Choice("Detect: Anything to do?")
    anything.add_choice(ChoiceRule.BooleanEquals("$.plan.actionable", False), notify_no_action)

    check_duplicate.add_choice(
        ChoiceRule.And(
            [
                ChoiceRule.IsPresent("$.plan.dedupeKey", True),
                ChoiceRule.BooleanEquals("$.plan.dryRun", False),
                ChoiceRule.BooleanEquals("$.plan.ignoreDuplicate", False),
            ]
        ),
        record_delivery,
    )
    check_duplicate.default_choice(anything)
    record_delivery.next(anything)

    # Guards computed by the scenario.
    guard_escalation = sdk.Pass(
        "Detect: Refuse to act",
        parameters={"cause.$": "$.plan.escalate.cause"},
        result_path="$.escalation",
    )
    notify_guard = notify("Notify: Escalate without acting", "$.plan.notices.escalate")
    guard_escalation.next(notify_guard)
    notify_guard.next(escalated)
    _tolerate_notify_failure(notify_guard, escalated)
    safe = sdk.Choice("Detect: Safe to act?")
    safe.add_choice(ChoiceRule.IsPresent("$.plan.escalate", True), guard_escalation)
    anything.default_choice(safe)

    # Kill switch.
    kill_switch_on = outcome("Kill switch engaged", "no-action", {"reason": "kill-switch"})
    notify_kill = notify("Notify: Kill switch engaged", "$.plan.notices.killSwitch")
    notify_kill.next(kill_switch_on)
    _tolerate_notify_failure(notify_kill, kill_switch_on)
    read_switch = sdk.Task(
        "Detect: Read kill switch",
        resource=SSM_GET_PARAMETER,
        parameters={"Name": KILL_SWITCH},
        result_selector={"value.$": "$.Parameter.Value"},
        result_path="$.killSwitch",
    )
    read_switch.add_retry(
        sdk.Retry(
            error_equals=["Ssm.ThrottlingException", "Ssm.InternalServerErrorException"],
            interval_seconds=1,
            max_attempts=4,
            backoff_rate=2.0,
        )
    )
    switch_missing = sdk.Pass(
        "Detect: Kill switch not set", result={"value": "off"}, result_path="$.killSwitch"
    )
    read_switch.add_catch(
        sdk.Catch(
            error_equals=["Ssm.ParameterNotFoundException"],
            next_step=switch_missing,
            result_path="$.killSwitchError",
        )
    )
    read_switch.add_catch(
        sdk.Catch(error_equals=["States.ALL"], next_step=detect_failed, result_path="$.error")
    )
    safe.default_choice(read_switch)
    engaged = sdk.Choice("Detect: Kill switch engaged?")
    read_switch.next(engaged)
    switch_missing.next(engaged)
    engaged.add_choice(ChoiceRule.StringEquals("$.killSwitch.value", "on"), notify_kill)

    # Announce, act.
    announce = notify("Notify: Report detection", "$.plan.notices.detected")
    engaged.default_choice(announce)
    first_act = _approval(p, escalated) if p.approval else p.act
    announce.next(first_act)
    _tolerate_notify_failure(announce, first_act)

    # Rollback chain (kept apart, entered by Catch).
    notify_held = notify("Notify: Escalate after failure", "$.rollback.notice")
    held = sdk.Pass(
        "Rollback: Escalate", parameters={"cause.$": "$.rollback.cause"}, result_path="$.escalation"
    )
    notify_held.next(held)
    held.next(escalated)
    _tolerate_notify_failure(notify_held, held)
    if p.rollback_tail is not None:
        notify_rollback = notify("Notify: Report rollback", "$.rollback.notice")
        restored = sdk.Choice("Rollback: Everything restored?")
        _continue(p.rollback_tail, restored)
        restored.add_choice(
            ChoiceRule.And([
                ChoiceRule.IsPresent("$.rollback.complete", True),
                ChoiceRule.BooleanEquals("$.rollback.complete", False),
            ]),
            notify_held,
        )
        restored.default_choice(notify_rollback)
        notify_rollback.next(rolled_back)
        _tolerate_notify_failure(notify_rollback, rolled_back)
    for state in p.rollback_escalate_from:
        _continue(state, notify_held)
    failed = sdk.Fail("Rollback failed", error="Runbook.Escalated", cause_path="$.escalation.cause")
    rollback_failed = _rollback_failed(p.scenario, failed)
    if p.rollback_report is not None:
        # A failed rollback is reported from the account's state, then escalates.
        read_report = sdk.Pass(
            "Rollback: Escalate failure",
            parameters={"cause.$": "$.rollback.cause"},
            result_path="$.escalation",
        )
        notify_failed = notify("Notify: Report failed rollback", "$.rollback.notice")
        p.rollback_report.next(read_report)
        read_report.next(notify_failed)
        notify_failed.next(failed)
        _tolerate_notify_failure(notify_failed, failed)
        for task in report_states:
            task.add_catch(
                sdk.Catch(
                    error_equals=["States.ALL"],
                    next_step=rollback_failed,
                    result_path="$.rollbackReportError",
                )
            )
        on_rollback_failure = p.rollback_report
    else:
        on_rollback_failure = rollback_failed
    for task in rollback_states:
        task.add_catch(
            sdk.Catch(
                error_equals=["States.ALL"],
                next_step=on_rollback_failure,
                result_path="$.rollbackError",
            )
        )
    for task in [*act_states, *verify_states]:
        task.add_catch(sdk.Catch(error_equals=["States.ALL"], next_step=p.rollback, result_path="$.error"))
    p.verify.gave_up.next(p.rollback)

    # Dry run stops after the act phase.
    dry_run_done = outcome("Dry run complete", "dry-run", {"actions.$": "$.act"})
    notify_dry = notify("Notify: Dry-run report", "$.plan.notices.dryRun")
    notify_dry.next(dry_run_done)
    _tolerate_notify_failure(notify_dry, dry_run_done)
    was_dry = sdk.Choice("Act: Dry run?")
    was_dry.add_choice(ChoiceRule.BooleanEquals("$.plan.dryRun", True), notify_dry)
    _continue(p.act_tail, was_dry)
    was_dry.default_choice(p.verify.start)

    # Verified.
    mitigated = sdk.Pass(
        "Mitigated",
        parameters={
            "outcome": "mitigated",
            "scenario.$": "$.plan.scenario",
            "summary.$": "$.verify.summary",
        },
    )
    notify_done = notify("Notify: Report mitigation", "$.verify.notice")
    if p.verified is not None:
        p.verify.done.next(p.verified)
        _continue(p.verified_tail if p.verified_tail is not None else p.verified, notify_done)
        for task in verified_states:
            task.add_catch(
                sdk.Catch(
                    error_equals=["States.ALL"], next_step=notify_done, result_path="$.verifiedError"
                )
            )
    else:
        p.verify.done.next(notify_done)
    notify_done.next(mitigated)
    _tolerate_notify_failure(notify_done, mitigated)

    graph = sdk.Graph(receive, comment=p.comment, timeout_seconds=p.timeout_seconds)
    return graph.to_dict()


LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"
REQUEST_APPROVAL_FUNCTION = "RequestApprovalFunction"
APPROVAL_URL = "${ApprovalFunctionUrl}"


def _approval(p: Phases, escalated: sdk.Fail) -> sdk.Choice:
    """Ask a person before acting; a rejection or no answer escalates and nothing changes.

    ``RequestApprovalFunction`` signs an approve and a reject link for the task token and
    publishes them (no raw token in the message); a POST from a link's confirmation page on
    ``${ApprovalFunctionUrl}`` answers the token. The links expire with the wait.
    """
    needed = sdk.Choice("Act: Approval required?")
    ask = sdk.Task(
        "Act: Wait for approval",
        resource=LAMBDA_INVOKE_WAIT,
        parameters={
            "FunctionName": "${" + REQUEST_APPROVAL_FUNCTION + "Arn}",
            "Payload": {
                "taskToken.$": "$$.Task.Token",
                "notice.$": "$.plan.notices.approval",
                "timeoutSeconds.$": "$.plan.approvalTimeoutSeconds",
                "execution.$": EXECUTION_ID,
                "enteredTime.$": "$$.State.EnteredTime",
                "topicArn": ALERT_TOPIC,
                "answerUrl": APPROVAL_URL,
            },
        },
        timeout_seconds_path="$.plan.approvalTimeoutSeconds",
        result_path="$.approval",
    )
    for retry in standard_retries():
        ask.add_retry(retry)
    refused = explain_and_escalate(
        "Act: Not approved",
        "States.Format('Not approved: {}. Nothing was changed.', "
        "States.JsonToString($.approvalError))",
        "Notify: Not approved",
        f"opsflow {p.scenario}: not approved, nothing changed",
        escalated,
    )
    ask.add_catch(sdk.Catch(error_equals=["States.ALL"], next_step=refused,
                            result_path="$.approvalError"))
    ask.next(p.act)
    needed.add_choice(ChoiceRule.BooleanEquals("$.plan.requireApproval", True), ask)
    needed.default_choice(p.act)
    return needed


def _rollback_failed(scenario: str, failed: sdk.Fail) -> states.State:
    """The chain a rollback failure goes to when nothing could report the account's state:
    explain from the error, notify, end at ``failed`` (``Runbook.Escalated``)."""
    return explain_and_escalate(
        "Rollback: Explain failure",
        "States.Format('Rollback failed ({}): {}. The account may be partly "
        "changed: check every resource named in the plan by hand.', "
        "$.rollbackError.Error, $.rollbackError.Cause)",
        "Notify: Rollback failed",
        f"opsflow {scenario}: ROLLBACK FAILED, act now",
        failed,
        error="$.rollbackError",
        function_cause="States.Format('Rollback failed ({}): {}. The account may be partly "
        "changed: check every resource named in the plan by hand.', "
        "$.rollbackError.Error, $.rollbackErrorDetail.errorMessage)",
    )
