"""An op-amp measurement as a job for spice_sim's local simulator (time limit) and Ray pool.

`OpampJob.execute(engine)` is what spice_sim.session_jobs.execute calls in a worker: the worker
keeps the last few OpampBenches loaded (one per amplifier and corner), so a job with new sizes or
conditions for an amplifier it has seen costs the measurement, not the library's load. The
amplifier is checked against the PDK before anything is loaded or run; every failure is a result.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field, replace

from spice_sim.errors import SimulationError

from .bench import Conditions, OpampBench, OpampMetrics

__all__ = ["OpampJob", "OpampResult", "MAX_BENCHES"]

MAX_BENCHES = 3


@dataclass(frozen=True)
class OpampJob:
    dut: str                                        # netlist text defining subcircuit `dut_name`
    dut_name: str
    sizes: tuple[tuple[str, float], ...] = ()       # this job's sizing-parameter values
    conditions: Conditions = field(default_factory=Conditions)
    pdk: str = "sky130"
    noise: bool = True
    step: bool = True
    swing: bool = True

    @property
    def key(self) -> tuple:
        return (self.pdk, self.conditions.corner, self.dut_name, self.dut)

    def execute(self, engine) -> "OpampResult":
        t0 = time.perf_counter()
        try:
            bench, loaded = _bench(engine, self)
            # every size not given takes the DUT's default: a job never inherits the previous job's sizes
            metrics = bench.measure(self.conditions, noise=self.noise, step=self.step, swing=self.swing,
                                    **{**bench.default_sizes, **dict(self.sizes)})
            return OpampResult(metrics, seconds=time.perf_counter() - t0, loaded=loaded,
                               load_seconds=bench.load_seconds if loaded else 0.0)
        except SimulationError as exc:
            return OpampResult(None, exc.kind, str(exc), time.perf_counter() - t0)
        except (ValueError, KeyError, FileNotFoundError) as exc:
            return OpampResult(None, "bad_netlist", str(exc), time.perf_counter() - t0)
        except Exception as exc:    # a bug must not kill the worker
            return OpampResult(None, "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)


@dataclass
class OpampResult:
    metrics: OpampMetrics | None
    failure: str | None = None
    message: str = ""
    seconds: float = 0.0
    loaded: bool = False
    load_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


_benches: "collections.OrderedDict[tuple, OpampBench]" = collections.OrderedDict()


def _bench(engine, job: OpampJob) -> tuple[OpampBench, bool]:
    b = _benches.get(job.key)
    if b is not None and b.session.engine is engine and b.session._loaded:
        _benches.move_to_end(job.key)
        return b, False
    if b is not None:
        _benches.pop(job.key).close()
    while len(_benches) >= MAX_BENCHES:
        _benches.popitem(last=False)[1].close()
    # the starting sizes are the DUT's own defaults; the job's sizes are set (and checked) by measure
    b = OpampBench(job.dut, job.dut_name, {}, pdk=job.pdk, corner=job.conditions.corner, engine=engine)
    _benches[job.key] = b
    return b, True


def with_sizes(job: OpampJob, **sizes: float) -> OpampJob:
    """The same job with other sizes."""
    return replace(job, sizes=tuple(sorted({**dict(job.sizes), **sizes}.items())))
