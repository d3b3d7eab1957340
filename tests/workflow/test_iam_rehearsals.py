"""The stack's IAM, proven by rehearsal: every sample event (and the dry-run, rollback and
approval paths) runs with zero denied calls, and every grant those runs use is needed: with it
taken out of the role, the first call of the rehearsal that used it that the role is refused is
that action, on a resource the rehearsal used (evaluated over the rehearsal's recorded calls;
for each role, a rerun with its soonest-used grant taken away shows the run agrees)."""

from __future__ import annotations

import copy
import fnmatch
import re
from typing import Any

import pytest

from opsflow import rehearsals
from opsflow.template import ROOT
from workflows.catalog import SCENARIOS

FINAL_ERRORS = {"Runbook.InvalidEvent", "Runbook.Escalated", "Runbook.RolledBack"}


def without(document: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy document with ``action`` taken out of every Allow statement that grants it
    (a statement left with no action is dropped), as deleting it from template.yaml would."""
    document = copy.deepcopy(document)
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    kept = []
    for statement in statements:
        actions = statement.get("Action")
        if statement.get("Effect") == "Allow" and actions is not None:
            actions = [actions] if isinstance(actions, str) else list(actions)
            remaining = [a for a in actions if not fnmatch.fnmatchcase(action.lower(), a.lower())]
            if not remaining:
                continue
            statement = {**statement, "Action": remaining}
        kept.append(statement)
    document["Statement"] = kept
    return document


def mutating(action: str) -> bool:
    from opsflow.engine.iam import catalog

    prefix, _, name = action.partition(":")
    if "*" in name:
        return True
    return catalog.action(prefix, name).mutating


def kind(arn: str) -> str:
    """An ARN without the ID of its resource: ``arn:aws:ec2:us-east-1:123:security-group``."""
    return re.split(r"[/:](?=[^/:]*$)", arn)[0] if arn != "*" else arn


def refused_first(result: rehearsals.Result, principal: str, action: str) -> Any:
    """The first of the rehearsal's calls that ``principal``, with ``action`` taken out of its
    policies, is refused: the call a rerun with that grant taken away is refused first (the
    run is the same call for call up to its first refusal; the rerun below checks it)."""
    from opsflow.engine.iam import policy

    found = result.principals[principal]
    policies = [(name, without(document, action)) for name, document in found.policies]
    for call in result.calls:
        if call.principal == principal and call.allowed and not policy.evaluate(
            policies, call.request, found.boundary
        ).allowed:
            return call
    return None


def take_away(principal: str, action: str) -> Any:
    def adjust(engine: Any) -> None:
        found = engine.principals[principal]
        found.policies = [(name, without(doc, action)) for name, doc in found.policies]

    return adjust


@pytest.mark.heavy
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_rehearsal_runs_without_a_denied_call_and_every_grant_it_uses_is_needed(
    scenario: str,
) -> None:
    results = [rehearsals.rehearse(case) for case in rehearsals.rehearsals(scenario)]
    for result in results:
        denied = result.unexpected()
        assert denied == [], f"{result.rehearsal.name}: {denied[0].action} {denied[0].resource}"
        if result.rehearsal.without:
            assert {(c.principal, c.action) for c in result.calls if not c.allowed} == (
                result.expected), result.rehearsal.name
        if result.rehearsal.stop_at:
            assert result.status == "ABORTED", result.rehearsal.name
            continue
        assert result.status == "SUCCEEDED" or result.error in FINAL_ERRORS, result.rehearsal.name

    # A mutating grant that no rehearsal of this runbook uses is removed or says why it stays.
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    for arn in set.union(*(r.scope for r in results)):
        unused = set.intersection(*(
            {(p, sid, tuple(a)) for p, sid, a in r.unused.get(arn, [])} for r in results
        ))
        for policy, sid, actions in sorted(unused):
            if rehearsals.not_rehearsed(policy, sid) or not any(mutating(a) for a in actions):
                continue
            assert re.search(rf"# Not rehearsed: .+\n\s*- Sid: {re.escape(sid)}\b", template), (
                f"{arn}: {policy}/{sid} ({', '.join(actions)}) is never used: remove it, or say "
                "why it stays in a '# Not rehearsed: ...' comment above it"
            )

    # Each (principal, action) is proven in the first rehearsal that uses it: with the grant
    # taken away, that rehearsal's first refused call is that action, on a resource it used.
    first_use: dict[tuple[str, str], tuple[rehearsals.Result, int, set[str]]] = {}
    for result in results:
        for index, call in enumerate(result.calls):
            if not call.allowed:
                continue
            key = (call.principal, call.action)
            if key not in first_use:
                first_use[key] = (result, index, set())
            if first_use[key][0] is result:
                first_use[key][2].add(call.resource)
    assert first_use, "the rehearsals made no call"
    predicted: dict[tuple[str, str], Any] = {}
    for (principal, action), (result, _, resources) in sorted(first_use.items()):
        first = predicted[principal, action] = refused_first(result, principal, action)
        assert first is not None, f"{result.rehearsal.name}: taking {action} from {principal} changed nothing"
        assert (first.principal, first.action) == (principal, action), (result.rehearsal.name, first)
        # Resources the run creates (an isolation group) get new IDs in every run: compare kinds.
        assert kind(first.resource) in {kind(r) for r in resources}, (result.rehearsal.name, first.resource)

    # The run itself agrees: for each principal, its grant first used soonest is taken away and
    # the rehearsal rerun, stopped at its first denied call, is refused that call.
    soonest: dict[str, tuple[int, str, rehearsals.Result]] = {}
    for (principal, action), (result, index, _) in first_use.items():
        if principal not in soonest or index < soonest[principal][0]:
            soonest[principal] = (index, action, result)
    for principal, (_, action, result) in sorted(soonest.items()):
        case = result.rehearsal
        rerun = rehearsals.rehearse(case, adjust=take_away(principal, action), first_denial=True)
        denied = rerun.unexpected()
        assert denied, f"{case.name}: taking {action} from {principal} changed nothing"
        first = predicted[principal, action]
        assert (denied[0].principal, denied[0].action, kind(denied[0].resource)) == (
            first.principal, first.action, kind(first.resource)), (case.name, denied[0])


def test_opsflow_iam_reports_a_refusal_on_purpose_apart_from_denials() -> None:
    from opsflow import cli

    case = next(c for c in rehearsals.rehearsals("health-abuse") if c.without)
    summary = cli.iam_summary([rehearsals.rehearse(case)])

    assert all(entry["denied"] == [] for entry in summary.values())
    refused = [line for entry in summary.values() for line in entry["refused on purpose"]]
    assert refused and all(line.startswith("sns:Publish ") for line in refused)
