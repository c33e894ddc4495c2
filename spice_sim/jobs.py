"""A simulation job and its result: the unit of work for the local simulator and the Ray pool.

A failure is a result with a `failure` kind and a message (spice_sim.errors.FAILURE_KINDS), not an
exception, so that one bad circuit never takes a batch down with it.

One job measures an amplifier the way metrics.md defines it: the AC sweep (gain, UGF, PM, peaking,
pm_min, ...); the exact poles from the deck's MNA matrices when every element is linear (`stable`,
open-loop right-half-plane poles); and, when the job carries a follower testbench, the transient of
the unity-gain follower (overshoot, settling, and `stable` for decks that are not linear).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from string import Template

import numpy as np

from .engine import NgSpiceEngine
from .errors import SimulationError
from .measure import Performance, loop_sign, measure, measure_step, step_grows
from .mna import Poles, parse_linear, poles

__all__ = ["SimJob", "SimResult", "run_job", "step_window", "STEP_V", "STEP_POINTS"]

#: The follower's input step (V): small, so that a circuit with real devices stays linear.
STEP_V = 1e-3
#: Time points of the follower transient (its maximum step is the window over this).
STEP_POINTS = 4000


@dataclass(frozen=True)
class SimJob:
    netlist: str                  # a complete deck with one .ac analysis
    input: str = "in"
    output: str = "out"
    keep_waveform: bool = False   # return freq and H (and the step response) as well (plots)
    # The unity-gain follower deck: a string.Template with $sign, $tstop, $tstep and $vstep
    # (cktflow's templates make it). None: no transient.
    follower: str | None = None
    poles: bool = True            # exact poles from the MNA matrices when the deck is linear


@dataclass
class SimResult:
    performance: Performance | None = None
    failure: str | None = None     # None when the simulation succeeded
    message: str = ""
    seconds: float = 0.0
    freq: np.ndarray | None = field(default=None, repr=False)
    h: np.ndarray | None = field(default=None, repr=False)
    poles: Poles | None = field(default=None, repr=False)
    time: np.ndarray | None = field(default=None, repr=False)    # follower step response (keep_waveform)
    step: np.ndarray | None = field(default=None, repr=False)    # V(out) / step, toward ~1
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict:
        d = {"ok": self.ok, "failure": self.failure, "message": self.message, "seconds": self.seconds}
        d["performance"] = self.performance.to_dict() if self.performance else None
        if self.poles is not None:
            d["poles_rad_s"] = self.poles.to_dict()
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def step_window(perf: Performance, freq: np.ndarray, h: np.ndarray) -> float:
    """How long the follower transient runs (s): 20 periods of the UGF, and 20 periods of the
    lowest frequency where the loop phase comes within 45 deg of -180 deg while |L| >= 1 (where a
    conditionally stable loop would ring), taken from the AC sweep; without a UGF, 20 periods of
    the -3 dB bandwidth (1 us when there is neither)."""
    f = perf.ugf_hz or perf.bw_hz
    tstop = 20.0 / f if f else 1e-6
    phase = np.unwrap(np.angle(h))
    lag = np.degrees(phase[0] - phase)
    near = (np.abs(h) >= 1.0) & (180.0 - np.abs(lag) < 45.0)
    if near.any():
        tstop = max(tstop, 20.0 / float(freq[np.argmax(near)]))
    return tstop


def run_job(engine: NgSpiceEngine, job: SimJob) -> SimResult:
    t0 = time.perf_counter()
    res = SimResult()
    try:
        data = engine.run_ac(job.netlist, (job.input, job.output))
        h = data.ratio(job.output, job.input)
        if not np.all(np.isfinite(h)):
            raise SimulationError(f"V({job.input}) is zero: the source at '{job.input}' has no AC magnitude")
        perf = measure(data.freq, h)
        if job.poles:
            deck = parse_linear(job.netlist)
            res.poles = poles(deck, job.input, job.output) if deck is not None else None
            if res.poles is not None:
                perf = perf.with_values(stable=res.poles.stable)
                if not res.poles.open_loop_stable:
                    res.notes.append(f"{len(Poles.rhp(res.poles.open_loop))} open-loop pole(s) in the right "
                                     "half-plane: the AC measurements describe an unstable amplifier")
        if job.follower is not None:
            perf = _follower(engine, job, perf, data.freq, h, res)
    except SimulationError as exc:
        return SimResult(failure=exc.kind, message=str(exc), seconds=time.perf_counter() - t0)
    except Exception as exc:  # an engine bug must not kill a worker; report it as a failure
        return SimResult(failure="error", message=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
    res.performance = perf
    res.seconds = time.perf_counter() - t0
    if job.keep_waveform:
        res.freq, res.h = data.freq, h
    return res


def _follower(engine: NgSpiceEngine, job: SimJob, perf: Performance, freq: np.ndarray, h: np.ndarray,
              res: SimResult) -> Performance:
    """Overshoot and settling of the unity-gain follower; `stable` from the transient when the
    poles are not known. A follower whose transient cannot be computed keeps those metrics None."""
    sign = loop_sign(h[0])
    tstop = step_window(perf, freq, h)
    tstep = tstop / STEP_POINTS
    deck = Template(job.follower).safe_substitute(sign=sign, tstop=f"{tstop:.6g}", tstep=f"{tstep:.6g}",
                                                  vstep=f"{STEP_V:g}")
    try:
        data = engine.run_tran(deck, (job.output,))
    except SimulationError as exc:
        res.notes.append(f"follower transient failed ({exc.kind}): {exc}")
        return perf
    t = data.freq
    y = np.real(data.voltages[job.output.lower()]) / STEP_V
    a0 = abs(h[0])
    final = a0 / (1.0 + a0)          # the closed loop's DC gain L0/(1+L0)
    overshoot, settling = measure_step(t, y, final)
    values = {"overshoot_pct": overshoot, "settling_s": settling}
    if perf.stable is None:
        values["stable"] = not step_grows(y, final)
    if job.keep_waveform:
        res.time, res.step = t, y
    return perf.with_values(**values)
