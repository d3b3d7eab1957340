"""The graph opsflow view and opsflow build draw: Map and Parallel states as groups holding their
states, every transition an edge, laid out by ELK through node, the same every time."""

from __future__ import annotations

import re

from opsflow import view

DEFINITION = {
    "StartAt": "Detect: Look",
    "States": {
        "Detect: Look": {"Type": "Pass", "Next": "Act: Both"},
        "Act: Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Act: Left", "States": {"Act: Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Act: Each", "States": {"Act: Each": {
                    "Type": "Map", "ItemProcessor": {"StartAt": "Act: One", "States": {
                        "Act: One": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                     "End": True}}},
                    "End": True}}},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "Done?",
        },
        "Done?": {"Type": "Choice", "Choices": [
            {"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}], "Default": "Failed"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail"},
    },
}


def test_groups_hold_their_states_and_every_transition_is_an_edge() -> None:
    model = view.graph(DEFINITION)
    (parallel,) = [n for n in model["nodes"] if n["type"] == "Parallel"]
    branches = parallel["children"]
    assert [b["type"] for b in branches] == ["Branch", "Branch"]
    (each,) = branches[1]["children"]
    assert each["type"] == "Map" and [c["id"] for c in each["children"]] == ["Act: One"]
    kinds = sorted((e["source"], e["target"], e["kind"]) for e in model["edges"])
    assert kinds == [
        ("Act: Both", "Done?", "next"), ("Act: Both", "Failed", "catch"),
        ("Detect: Look", "Act: Both", "next"), ("Done?", "Done", "choice"),
        ("Done?", "Failed", "default"),
    ]
    assert {n["id"] for n in model["nodes"] if n["terminal"]} == {"Done", "Failed"}


def test_elk_lays_it_out_the_same_every_time() -> None:
    first, second = view.svgs([DEFINITION, DEFINITION])
    assert first == second
    for name in ("Detect: Look", "Act: Both", "Act: Left", "Act: Each", "Act: One", "Done?"):
        assert f'data-state="{name}"' in first
    assert first.count('class="group') == 4  # the Parallel, its two branches, the Map
    # The Map's box lies inside its branch's box, which lies inside the Parallel's.
    boxes = {
        m.group(1): tuple(float(v) for v in m.group(2, 3, 4, 5))
        for m in re.finditer(r'data-state="([^"]+)" data-type="(?:Map|Parallel|Branch)"><rect '
                             r'x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', first)
    }

    def inside(inner: str, outer: str) -> bool:
        x, y, w, h = boxes[inner]
        ox, oy, ow, oh = boxes[outer]
        return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh

    assert inside("Act: Each", "Act: Both#branch2") and inside("Act: Both#branch2", "Act: Both")
    assert first.count('class="edge') >= 5
