"""Measure many circuits at once: the one entry point the model, sizing and dataset code use.

`simulate(circuits)` turns each Circuit into the OCB testbench deck and runs it; the caller gets one
SimResult per circuit, in order. Invalid circuits come back as failure "invalid_circuit" without
reaching ngspice. A handful of circuits run in a local child process (no Ray start-up, which costs
seconds); larger batches, or any batch given a `pool`, run on the Ray pool (spice_sim.pool).
Callers that simulate repeatedly (sizing, the flywheel) should open one pool with `open_pool()` and
pass it to every call, so Ray starts once.
"""

from __future__ import annotations

import functools
import logging
from typing import Sequence

from spice_sim import LocalSimulator, SimJob, SimResult

from .cache import cache_dir
from .circuit import Circuit, follower_testbench, testbench, validity_problems

__all__ = ["simulate", "open_pool", "simulator_version", "testbench_version", "LOCAL_MAX", "INVALID"]

log = logging.getLogger(__name__)

#: Up to this many circuits run without Ray when no pool is given (Ray start-up ~ 1,000+ simulations).
LOCAL_MAX = 64
#: Failure kind of a circuit that cannot be realised (never simulated).
INVALID = "invalid_circuit"
#: Names the stability measurements (peaking_db, pm_min_deg, stable from MNA poles) in the
#: testbench version of a stored label: labels without it predate them (cktflow dataset migrate).
STABILITY_VERSION = "stab1"


def open_pool(ray_address: str | None = None, num_workers: int | None = None, timeout_s: float = 30.0,
              progress: bool = True, chunk_size: int | None = None):
    """A SimPool whose embedded Ray keeps its session files in the cktflow cache (not /tmp/ray).

    With `ray_address` (or RAY_ADDRESS in the environment) it joins that cluster instead. Use it as a
    context manager so Ray is shut down afterwards. `chunk_size`: jobs per actor call (default: the
    pool's guided sizes, made for millisecond jobs; 1 suits jobs of tens of milliseconds or more).
    """
    from spice_sim.pool import SimPool
    return SimPool(num_workers=num_workers, address=ray_address, timeout_s=timeout_s,
                   temp_dir=cache_dir() / "ray", progress=progress, chunk_size=chunk_size)


def simulate(circuits: Sequence[Circuit], pool=None, *, keep_waveform: bool = False, progress: bool = True,
             timeout_s: float = 30.0, step: bool = False) -> list[SimResult]:
    """One SimResult per circuit, in order; failures are results with a `failure` kind, never raised.

    Every result has the AC metrics and, from the exact poles, `stable`; `step=True` also runs the
    unity-gain follower's transient (overshoot_pct, settling_s; the step response with
    `keep_waveform`), which costs about as much again."""
    results: list[SimResult | None] = [None] * len(circuits)
    jobs: list[SimJob] = []
    where: list[int] = []
    for i, c in enumerate(circuits):
        problems = validity_problems(c)
        if problems:
            results[i] = SimResult(failure=INVALID, message="; ".join(problems))
            continue
        jobs.append(SimJob(testbench(c), keep_waveform=keep_waveform,
                           follower=follower_testbench(c) if step else None))
        where.append(i)
    if jobs:
        for i, res in zip(where, _run(jobs, pool, progress, timeout_s)):
            results[i] = res
    return results  # type: ignore[return-value]


def _run(jobs: list[SimJob], pool, progress: bool, timeout_s: float) -> list[SimResult]:
    if pool is not None:
        return pool.map(jobs)
    if len(jobs) <= LOCAL_MAX:
        with LocalSimulator(timeout_s=timeout_s) as local:
            return [local.run(job) for job in jobs]
    log.info("simulating %d circuits on a temporary Ray pool", len(jobs))
    with open_pool(timeout_s=timeout_s, progress=progress) as temporary:
        return temporary.map(jobs)


def testbench_version() -> str:
    """Names the testbench a stored label was measured with (the sweep, from realize.OCB_SWEEP)."""
    from .circuit import OCB_SWEEP
    return f"ocb-{OCB_SWEEP.version}+{STABILITY_VERSION}"


@functools.lru_cache(maxsize=1)
def simulator_version() -> str:
    """"ngspice-<version>" of the shared library this machine simulates with (loads it once)."""
    from spice_sim.engine import get_engine
    return f"ngspice-{get_engine().version}"
