"""A drill's report: timed steps, row counts per stage, measured facts, and the verdict.

The verdict is ``recovered`` only when every expectation a drill states held (each failed one is
listed by what it expected and what it found) and the drill ran to its end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class DrillReport:
    scenario: str
    hold_s: float
    steps: list[Step] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> table (or thing) -> rows
    facts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = False
    seconds: float = 0.0

    @property
    def recovered(self) -> bool:
        return self.finished and not self.failures and bool(self.steps)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time one step; its ``detail`` may be set inside. An exception marks it failed and
        propagates (the drill stops; ``run`` records why)."""
        step = Step(name, 0.0, True)
        started = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            step.ok = False
            step.detail = (step.detail + "; " if step.detail else "") + f"{type(exc).__name__}: {exc}"[:300]
            raise
        finally:
            step.seconds = round(time.monotonic() - started, 2)
            self.steps.append(step)

    def expect(self, condition: bool, what: str, found: Any = None) -> bool:
        """Record an expectation; a false one fails the drill, naming what was found."""
        if not condition:
            self.failures.append(what if found is None else f"{what} (found {found})")
            if self.steps:
                self.steps[-1].ok = False
        return condition

    def expect_in_step(self, step: Step, condition: bool, what: str, found: Any = None) -> bool:
        """``expect`` for the step still running (it is appended to ``steps`` when it ends)."""
        if not condition:
            step.ok = False
            self.failures.append(what if found is None else f"{what} (found {found})")
        return condition

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recovered": self.recovered}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def to_text(self) -> str:
        verdict = "RECOVERED" if self.recovered else "NOT RECOVERED"
        lines = [f"chaos drill {self.scenario}: {verdict} (hold {self.hold_s:g} s, {self.seconds:.1f} s in all)", "",
                 "steps:"]
        width = max((len(s.name) for s in self.steps), default=10)
        for s in self.steps:
            lines.append(f"  {'ok  ' if s.ok else 'FAIL'} {s.name:<{width}} {s.seconds:>6.2f} s  {s.detail}")
        if self.counts:
            stages = list(self.counts)
            keys = sorted({k for stage in self.counts.values() for k, n in stage.items() if n})
            kw = max(len(k) for k in keys) if keys else 5
            lines += ["", "rows:", "  " + " " * kw + "".join(f"  {s:>16}" for s in stages)]
            for k in keys:
                lines.append(f"  {k:<{kw}}" + "".join(f"  {self.counts[s].get(k, '-'):>16}" for s in stages))
        if self.facts:
            lines += ["", "facts:"] + [f"  {k}: {v}" for k, v in self.facts.items()]
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        if self.failures:
            lines += ["", "failed expectations:"] + [f"  - {f}" for f in self.failures]
        return "\n".join(lines)
