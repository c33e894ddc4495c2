"""A pool without Ray: one long-lived local ngspice process behind the SimPool `map` interface.

Sizing one circuit sends batches of a few simulations of ~2 ms each; starting Ray (seconds) or a
fresh child process per batch would cost more than the simulations, so `cktflow size` defaults to
this and `cktflow.simulate.simulate(circuits, pool)` treats it like any pool.
"""

from __future__ import annotations

from typing import Sequence

from spice_sim import LocalSimulator, SimJob, SimResult

__all__ = ["SerialPool"]


class SerialPool:
    """`map(jobs)` runs jobs one after another in one child ngspice process (kept between calls)."""

    def __init__(self, timeout_s: float = 30.0):
        self._sim = LocalSimulator(timeout_s=timeout_s)
        self.num_workers = 1

    def map(self, jobs: Sequence[SimJob]) -> list[SimResult]:
        return [self._sim.run(job) for job in jobs]

    def close(self) -> None:
        self._sim.close()

    def __enter__(self) -> "SerialPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
