"""The rehearsal's speed goals, each printed beside the figure measured for it in this run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Goal:
    figure: str
    measured: float
    limit: float
    unit: str = "s"
    note: str = ""

    @property
    def met(self) -> bool:
        return self.measured <= self.limit


GOALS: list[Goal] = []


def record(figure: str, measured: float, limit: float, unit: str = "s", note: str = "") -> None:
    GOALS.append(Goal(figure, measured, limit, unit, note))


def _shown(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.2f} {unit}"


def report() -> None:
    if not GOALS:
        return
    print("\nGoals (each measured above, in this run)")
    width = max(len(g.figure) for g in GOALS)
    header = f"  {'figure':<{width}} {'measured':>11} {'goal':>11}  met"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for goal in GOALS:
        print(f"  {goal.figure:<{width}} {_shown(goal.measured, goal.unit):>11} "
              f"{'<= ' + _shown(goal.limit, goal.unit):>11}  {'yes' if goal.met else 'NO'}"
              + (f"  ({goal.note})" if goal.note else ""))
    missed = sum(not g.met for g in GOALS)
    print(f"  {len(GOALS) - missed} of {len(GOALS)} met; where the time of each missed one goes: "
          "its note, and the profiles of make bench")
