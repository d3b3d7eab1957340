"""The stack's IAM, proven by rehearsal: every sample event (and the dry-run, rollback and
approval paths) runs with zero denied calls, and every grant those runs use is needed: taking
it out of the role makes the rehearsal that used it fail, naming the principal, the action and
the resource."""

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


def take_away(principal: str, action: str) -> Any:
    def adjust(engine: Any) -> None:
        found = engine.principals[principal]
        found.policies = [(name, without(doc, action)) for name, doc in found.policies]

    return adjust


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

    # Each (principal, action) is proven in the first rehearsal that uses it.
    first_use: dict[tuple[str, str], tuple[rehearsals.Rehearsal, set[str]]] = {}
    for result in results:
        for call in result.calls:
            if not call.allowed:
                continue
            key = (call.principal, call.action)
            if key not in first_use:
                first_use[key] = (result.rehearsal, set())
            if first_use[key][0] is result.rehearsal:
                first_use[key][1].add(call.resource)
    assert first_use, "the rehearsals made no call"
    for (principal, action), (case, resources) in sorted(first_use.items()):
        rerun = rehearsals.rehearse(case, adjust=take_away(principal, action))
        denied = rerun.unexpected()
        assert denied, f"{case.name}: taking {action} from {principal} changed nothing"
        first = denied[0]
        assert (first.principal, first.action) == (principal, action), (case.name, first)
        # Resources the run creates (an isolation group) get new IDs in every run: compare kinds.
        assert kind(first.resource) in {kind(r) for r in resources}, (case.name, first.resource)


def test_opsflow_iam_reports_a_refusal_on_purpose_apart_from_denials() -> None:
    from opsflow import cli

    case = next(c for c in rehearsals.rehearsals("health-abuse") if c.without)
    summary = cli.iam_summary([rehearsals.rehearse(case)])

    assert all(entry["denied"] == [] for entry in summary.values())
    refused = [line for entry in summary.values() for line in entry["refused on purpose"]]
    assert refused and all(line.startswith("sns:Publish ") for line in refused)
