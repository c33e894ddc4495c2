"""The one result type every reliability check returns: a row of the table in docs/reliability.md."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """cases run, failures (anything the check's oracle calls wrong), data lost (results or rows
    that should exist and do not, or exist twice: measured, never assumed), seconds."""
    test: str
    cases: int = 0
    failures: int = 0
    lost: int = 0
    seconds: float = 0.0
    scale: str = ""                 # what was run, e.g. "20,000 sims x 10 kills"
    examples: list[str] = field(default_factory=list)   # the first few failures, for the report
    notes: list[str] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.examples) < 8:
            self.examples.append(what[:600])

    def done(self) -> "Outcome":
        self.seconds = time.perf_counter() - self._t0
        return self

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.lost == 0 and self.cases > 0

    def summary(self) -> str:
        lines = [f"{self.test}: {self.cases} cases, {self.failures} failures, {self.lost} lost, {self.seconds:.1f} s"]
        lines += [f"  failure: {e}" for e in self.examples]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
