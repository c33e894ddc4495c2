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
from spice_sim.local import LocalSimulator

from .bench import Conditions, OpampBench, OpampMetrics, deck_params
from .netlist import logical_lines

__all__ = ["OpampJob", "OpampResult", "MAX_BENCHES", "KeyedLocalSimulator"]

#: Benches one worker keeps loaded. One: ngspice's `reset` after `alterparam` re-parses the most
#: recently loaded deck, whichever circuit is current (measured: with three decks loaded, resizing
#: the oldest replaced it by a copy of the newest, and its next analysis failed), so only the
#: newest bench can take new sizes. A caller that alternates amplifiers or corners routes each to
#: its own process (KeyedLocalSimulator) instead.
MAX_BENCHES = 1


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
    keep_waves: bool = False                        # the follower's step and the open-loop AC response

    @property
    def key(self) -> tuple:
        """Which loaded bench serves this job: the DUT without its .param lines and comments, so that
        the same amplifier at other sizes (a sized copy, whose text carries its values) reuses it."""
        return (self.pdk, self.conditions.corner, self.dut_name, _shape(self.dut))

    def execute(self, engine) -> "OpampResult":
        t0 = time.perf_counter()
        try:
            bench, loaded = _bench(engine, self)
            # every size not given takes the DUT's default: a job never inherits the previous job's sizes
            metrics = bench.measure(self.conditions, noise=self.noise, step=self.step, swing=self.swing,
                                    keep_step=self.keep_waves, keep_ac=self.keep_waves,
                                    **{**bench.default_sizes, **deck_params(self.dut), **dict(self.sizes)})
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
    newest = next(reversed(_benches), None) == job.key     # only the newest deck may be resized (MAX_BENCHES)
    if b is not None and newest and b.session.engine is engine and b.session._loaded:
        return b, False
    if b is not None:
        _benches.pop(job.key).close()
    while len(_benches) >= MAX_BENCHES:
        _benches.popitem(last=False)[1].close()
    # the starting sizes are the DUT's own defaults; the job's sizes are set (and checked) by measure
    b = OpampBench(job.dut, job.dut_name, {}, pdk=job.pdk, corner=job.conditions.corner, engine=engine)
    _benches[job.key] = b
    return b, True


class KeyedLocalSimulator:
    """`run(job)` like spice_sim's LocalSimulator (a child process, a time limit), with one child
    process per amplifier and corner (OpampJob.key), so that each keeps its one bench loaded
    (MAX_BENCHES) while a caller alternates between corners or amplifiers. At most `max_processes`
    children (each holds the PDK's library: ~0.6 GB); the least recently used one is closed."""

    def __init__(self, timeout_s: float = 180.0, max_processes: int = 4):
        if max_processes < 1:
            raise ValueError(f"max_processes must be at least 1, got {max_processes}")
        self.timeout_s = timeout_s
        self.max_processes = max_processes
        self._sims: "collections.OrderedDict[tuple, LocalSimulator]" = collections.OrderedDict()

    def run(self, job):
        key = getattr(job, "key", None)
        sim = self._sims.get(key)
        if sim is None:
            while len(self._sims) >= self.max_processes:
                self._sims.popitem(last=False)[1].close()
            sim = self._sims[key] = LocalSimulator(timeout_s=self.timeout_s)
        self._sims.move_to_end(key)
        return sim.run(job)

    def close(self) -> None:
        while self._sims:
            self._sims.popitem()[1].close()

    def __enter__(self) -> "KeyedLocalSimulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shape(dut: str) -> str:
    return "\n".join(ln for _, ln in logical_lines(dut) if not ln.lower().startswith(".param"))


def with_sizes(job: OpampJob, **sizes: float) -> OpampJob:
    """The same job with other sizes."""
    return replace(job, sizes=tuple(sorted({**dict(job.sizes), **sizes}.items())))
