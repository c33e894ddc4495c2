"""A simulation job and its result: the unit of work for the local simulator and the Ray pool.

A failure is a result with a `failure` kind and a message (spice_sim.errors.FAILURE_KINDS), not an
exception, so that one bad circuit never takes a batch down with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .engine import NgSpiceEngine
from .errors import SimulationError
from .measure import Performance, measure

__all__ = ["SimJob", "SimResult", "run_job"]


@dataclass(frozen=True)
class SimJob:
    netlist: str                  # a complete deck with one .ac analysis
    input: str = "in"
    output: str = "out"
    keep_waveform: bool = False   # return freq and H as well (plots)


@dataclass
class SimResult:
    performance: Performance | None = None
    failure: str | None = None     # None when the simulation succeeded
    message: str = ""
    seconds: float = 0.0
    freq: np.ndarray | None = field(default=None, repr=False)
    h: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict:
        d = {"ok": self.ok, "failure": self.failure, "message": self.message, "seconds": self.seconds}
        d["performance"] = self.performance.to_dict() if self.performance else None
        return d


def run_job(engine: NgSpiceEngine, job: SimJob) -> SimResult:
    t0 = time.perf_counter()
    try:
        data = engine.run_ac(job.netlist, (job.input, job.output))
        h = data.ratio(job.output, job.input)
        if not np.all(np.isfinite(h)):
            raise SimulationError(f"V({job.input}) is zero: the source at '{job.input}' has no AC magnitude")
        perf = measure(data.freq, h)
    except SimulationError as exc:
        return SimResult(failure=exc.kind, message=str(exc), seconds=time.perf_counter() - t0)
    except Exception as exc:  # an engine bug must not kill a worker; report it as a failure
        return SimResult(failure="error", message=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
    res = SimResult(performance=perf, seconds=time.perf_counter() - t0)
    if job.keep_waveform:
        res.freq, res.h = data.freq, h
    return res
