"""``opsflow build``: compile every scenario to ``statemachines/<scenario>.asl.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsflow.template import ROOT
from workflows import asl
from workflows.catalog import SCENARIOS

OUT = ROOT / "statemachines"


@dataclass
class Built:
    scenario: str
    path: Path
    text: str
    current: str | None

    @property
    def drifted(self) -> bool:
        return self.text != self.current


def compile_all() -> list[Built]:
    results = []
    for scenario in SCENARIOS.values():
        path = OUT / f"{scenario.id}.asl.json"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        results.append(Built(scenario.id, path, asl.dumps(scenario.definition()), current))
    return results


def write(results: list[Built]) -> None:
    OUT.mkdir(exist_ok=True)
    for built in results:
        if built.drifted:
            built.path.write_text(built.text, encoding="utf-8")
