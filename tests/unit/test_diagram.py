"""The Mermaid diagrams show every state and every transition of the compiled ASL."""

from __future__ import annotations

import json
import re

import pytest

from opsflow import cli, diagram
from opsflow.template import ROOT
from workflows.catalog import SCENARIOS


def _all_states(definition: dict) -> dict:
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            found.update(_all_states(inner))
    return found


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_state_and_transition_is_drawn(scenario: str) -> None:
    definition = json.loads((ROOT / "statemachines" / f"{scenario}.asl.json").read_text())
    chart = diagram.mermaid(definition)
    states = _all_states(definition)
    nodes = dict(re.findall(r'^\s+(s\d+)[\[\{\(]+"([^"]+)"', chart, flags=re.M))
    assert set(nodes.values()) == set(states)
    ids = {name: node for node, name in nodes.items()}
    edges = set(re.findall(r"^\s+(s\d+) [-.]+>(?:\|[^|]*\|)? (s\d+)$", chart, flags=re.M))
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        for target in filter(None, targets):
            assert (ids[name], ids[target]) in edges, (name, target)


def test_diagram_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diagram", "health-abuse"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    assert cli.main(["diagram", "nope"]) == 2
