"""Sizing at transistor level: the ask/tell sizer (cktflow.sizing.sizer.Sizer) over a
TransistorCircuit's sizing parameters, against the worst case over a spec's conditions.

What differs from the behavioural level, and why:

* The space is the circuit's SizingParams (W, L, nf, m, bias currents, ...), log-scaled within
  their bounds (the PDK's limits, or the netlist's `*@ param` lines); every asked point is snapped
  onto the PDK's grid (nf, m: whole numbers) before it is simulated, so what the history records is
  exactly what ngspice measured. Points that snap onto one already measured cost no simulation.
* One point is measured at several conditions (corners x temperatures). The typical condition (the
  PDK's default corner, the temperature nearest 27 C) runs first; the others only for points that
  meet every target there: a point that misses at typical misses the spec, and corners cost as
  much as typical each. For the same reason a point stops at the first other condition it misses,
  and the condition that has failed most often in the run is tried first: near the spec's edge
  most points pass typical and fail one corner, and they cost two simulations instead of one per
  condition (nine at 3 corners x 3 temperatures). A point's objective reads the worst case over
  the conditions it was measured at (Spec.worst_case), so a point measured at typical only is
  judged on typical, and one stopped at a corner on typical and the conditions up to that corner.
* Every simulation of a point at a condition counts as one simulation (the budget is in
  simulations, not points).
* All devices in saturation is an implicit target (`all_saturated`, true/false); the sizer also
  bounds `min_margin_v >= 0` (the smallest vds - vdsat), which says how far a point is from
  saturation and so gives the optimiser a slope where the true/false target has none.
* The follower's transient costs ~15x an operating point + AC sweep (1.5 s vs 0.1 s for the
  two-stage Miller), so sizing runs it only when a target needs it (slew, settling, overshoot, or
  `stable` set by the user). The implicit `stable` is then left to the final verification
  (cktflow.flow.transistor.verify_transistor runs every testbench at every condition) while the
  AC-based implicit targets (pm_min_deg, peaking_db) keep guarding stability during sizing. Noise
  and swing run when a target names them.

Resuming: every simulation is appended to a JSON-lines history as it finishes (the sizes, the
condition, the measured values). A run given an existing history replays the same ask/tell
sequence (same seed, same results read back from the file: the optimiser is deterministic), so an
interrupted run resumes exactly where it stopped, without re-simulating anything it had finished,
and ends as the uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from spice_sim.measure import Performance

from ..fsutil import atomic_write_text
from ..spec import Bound, Spec
from ..technology import load_technology
from ..transistor import Conditions, TransistorCircuit
from ..transistor.jobs import OpampJob
from .objective import Evaluation
from .sizer import SizingConfig, Sizer, _bar

__all__ = ["TransistorSpace", "MeasurePlan", "measure_plan", "sizing_spec", "typical_first", "run_jobs",
           "ConditionRun", "PointResult", "SimulationLog", "TransistorSizingResult", "size_transistor",
           "HISTORY_FORMAT", "STEP_METRICS", "NOISE_METRICS", "SWING_METRICS"]

HISTORY_FORMAT = "cktflow-transistor-sizing/1"
#: Targets that need the follower's transient, the noise analysis, the swing DC sweep.
STEP_METRICS = frozenset({"slew_v_per_s", "slew_rise_v_per_s", "slew_fall_v_per_s", "settling_s", "overshoot_pct",
                          "stable"})
NOISE_METRICS = frozenset({"noise_v_per_rthz", "noise_v_rms"})
SWING_METRICS = frozenset({"swing_v", "swing_low_v", "swing_high_v"})


# ---- the search space -----------------------------------------------------------------------------

def _kind(circuit: TransistorCircuit, name: str) -> str:
    """What a parameter sizes, coarsely: mos.w, mos.l, cap.w, res.l, ... or the element letter
    (i: a bias current). The sizer's first points move all values of one kind together."""
    p = circuit.param(name)
    if not p.sizes:
        return p.unit or "other"
    what = p.sizes[0]
    if "." not in what:
        return what
    dev, dim = what.split(".", 1)
    shape = circuit.technology.device(dev).type
    return f"{'mos' if shape in ('nmos', 'pmos') else shape[:3]}.{dim}"


@dataclass(frozen=True)
class TransistorSpace:
    """The sizing parameters of one TransistorCircuit as a search space, with the interface the
    behavioural SearchSpace gives the Sizer (keys, bounds, start, circuit_at, log transforms)."""
    circuit: TransistorCircuit
    keys: tuple[tuple[str, str], ...]          # (parameter name, kind)
    bounds: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, circuit: TransistorCircuit) -> "TransistorSpace":
        if not circuit.params:
            raise ValueError(f"{circuit.name}: the circuit has no sizing parameters")
        keys = tuple((p.name, _kind(circuit, p.name)) for p in circuit.params)
        bounds = tuple((p.low, p.high) for p in circuit.params)
        if any(lo <= 0 for lo, _ in bounds):
            bad = next(p.name for p in circuit.params if p.low <= 0)
            raise ValueError(f"{circuit.name}: parameter {bad} has a lower bound <= 0; a log-scaled search "
                             "needs positive bounds ('*@ param NAME min=...')")
        return cls(circuit, keys, bounds)

    @property
    def dims(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    def dimensions(self) -> list:
        from skopt.space import Real
        return [Real(lo, hi, prior="log-uniform", name=k) for (k, _), (lo, hi) in zip(self.keys, self.bounds)]

    def snap(self, x: Sequence[float]) -> list[float]:
        """Clipped into the bounds and rounded onto each parameter's grid (nf, m: whole numbers)."""
        if len(x) != self.dims:
            raise ValueError(f"expected {self.dims} values, got {len(x)}")
        return [self.circuit.param(k).snap(float(v) if math.isfinite(v) else math.sqrt(lo * hi))
                for k, v, (lo, hi) in zip(self.names, x, self.bounds)]

    def start(self) -> list[float]:
        return self.snap([p.value for p in self.circuit.params])

    def sizes(self, x: Sequence[float]) -> dict[str, float]:
        return dict(zip(self.names, self.snap(x)))

    def circuit_at(self, x: Sequence[float]) -> TransistorCircuit:
        return self.circuit.with_sizes(**self.sizes(x))

    def to_log(self, x: Sequence[float]) -> list[float]:
        return [math.log10(v) for v in x]

    def from_log(self, u: Sequence[float]) -> list[float]:
        return self.snap([10.0 ** v for v in u])


# ---- what is simulated where -----------------------------------------------------------------------

@dataclass(frozen=True)
class MeasurePlan:
    """The conditions of a sizing run (typical first) and the testbenches it runs at each."""
    conditions: tuple[Conditions, ...]
    noise: bool
    step: bool
    swing: bool

    @property
    def typical(self) -> Conditions:
        return self.conditions[0]


def typical_first(conditions: Sequence[Conditions], default_corner: str) -> list[Conditions]:
    """The conditions with the typical one first: the PDK's default corner (else the first corner
    listed) at the temperature nearest 27 C; the others keep their order."""
    if not conditions:
        raise ValueError("no conditions to size at")
    corners = [c.corner for c in conditions]
    corner = default_corner if default_corner in corners else corners[0]
    typ = min((c for c in conditions if c.corner == corner), key=lambda c: abs(c.temp_c - 27.0))
    return [typ] + [c for c in conditions if c is not typ]


def measure_plan(spec: Spec, conditions: Sequence[Conditions], default_corner: str) -> MeasurePlan:
    own = {b.metric for b in spec.targets}
    return MeasurePlan(tuple(typical_first(conditions, default_corner)), noise=bool(own & NOISE_METRICS),
                       step=bool(own & STEP_METRICS), swing=bool(own & SWING_METRICS))


def sizing_spec(spec: Spec, plan: MeasurePlan) -> Spec:
    """The spec the sizer works on: the user's, with the implicit `stable` left to the final
    verification when the follower's transient does not run, and `min_margin_v >= 0` as the
    graded form of `all_saturated` (module docstring). Met exactly when the spec is met by the
    testbenches sizing runs."""
    waived = set(spec.waived)
    if not plan.step:
        waived.add("stable")
    targets = spec.targets
    if any(b.metric == "all_saturated" for b in spec.bounds) and "min_margin_v" not in {b.metric for b in targets}:
        targets = targets + (Bound("min_margin_v", min=0.0),)
    return replace(spec, targets=targets, waived=frozenset(waived))


# ---- running jobs ----------------------------------------------------------------------------------

def run_jobs(simulator, jobs: Sequence[OpampJob], on_result=None) -> list:
    """Run OpampJobs on a SimPool (Ray, results as they finish) or a LocalSimulator (one by one);
    `on_result(i, result)` sees each result as soon as it is there (the history is written then)."""
    out: list = [None] * len(jobs)
    if not jobs:
        return out
    if hasattr(simulator, "imap_unordered"):
        pairs = simulator.imap_unordered(list(jobs))
    elif hasattr(simulator, "map"):
        pairs = enumerate(simulator.map(list(jobs)))
    else:
        pairs = ((i, simulator.run(j)) for i, j in enumerate(jobs))
    for i, res in pairs:
        out[i] = res
        if on_result is not None:
            on_result(i, res)
    return out


@dataclass(frozen=True)
class ConditionRun:
    """One simulation of a point at one condition, as the history stores it."""
    condition: str
    performance: Performance | None
    failure: str | None = None
    message: str = ""
    worst_device: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.performance is not None

    @classmethod
    def of(cls, label: str, result) -> "ConditionRun":
        metrics = getattr(result, "metrics", None)
        if metrics is None:
            return cls(label, None, getattr(result, "failure", None) or "error", getattr(result, "message", ""))
        return cls(label, metrics.performance, None, "", metrics.worst_device)

    def to_dict(self) -> dict:
        return {"condition": self.condition, "failure": self.failure, "message": self.message,
                "worst_device": self.worst_device,
                "performance": dict(self.performance.items()) if self.performance is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> "ConditionRun":
        perf = d.get("performance")
        return cls(d["condition"], Performance(**perf) if perf is not None else None, d.get("failure"),
                   d.get("message", ""), d.get("worst_device"))


#: Metrics the objectives read besides the targets (their worst case: the largest power and area).
_OBJECTIVE_METRICS = ("power_w", "area_um2")


@dataclass
class PointResult:
    """A point's measurements at the conditions it was simulated at (typical first), read by the
    Sizer as one result: `performance` is the worst case over them."""
    runs: list[ConditionRun]
    spec: Spec

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def failure(self) -> str | None:
        return next((r.failure for r in self.runs if not r.ok), None)

    @property
    def message(self) -> str:
        bad = next((r for r in self.runs if not r.ok), None)
        return f"{bad.condition}: {bad.message}" if bad else ""

    @property
    def performance(self) -> Performance | None:
        if not self.ok:
            return None
        perfs = [r.performance for r in self.runs]
        worst = self.spec.worst_case(perfs)
        extra = {m: max(p.get(m) for p in perfs) for m in _OBJECTIVE_METRICS
                 if worst.get(m) is None and all(p.get(m) is not None for p in perfs)}
        return worst.with_values(**extra)


# ---- the history -----------------------------------------------------------------------------------

def _point_key(sizes: dict[str, float]) -> str:
    return json.dumps(sorted((k, float(f"{v:.12g}")) for k, v in sizes.items()))


class SimulationLog:
    """Every simulation of a sizing run, one JSON line each, appended as it finishes (module docstring)."""

    def __init__(self, path: str | Path | None, header: dict):
        self.path = Path(path) if path is not None else None
        self.runs: dict[tuple[str, str], ConditionRun] = {}
        if self.path is None:
            return
        if self.path.is_file() and self.path.stat().st_size > 0:
            lines = self.path.read_text().splitlines()
            try:
                found = json.loads(lines[0])
                for ln in lines[1:]:
                    if ln.strip():
                        d = json.loads(ln)
                        self.runs[(_point_key(d["sizes"]), d["condition"])] = ConditionRun.from_dict(d)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, json.JSONDecodeError) and ln is lines[-1]:
                    pass    # a line cut off by an interruption: that simulation runs again
                else:
                    raise ValueError(f"{self.path}: not a transistor sizing history ({exc})") from None
            mine = json.loads(json.dumps(header))
            for key in mine:
                if found.get(key) != mine[key]:
                    raise ValueError(f"{self.path}: the history belongs to another sizing run ({key} differs); "
                                     "remove it or give another history file")
        else:
            atomic_write_text(self.path, json.dumps(header) + "\n")    # whole or absent after a kill

    def get(self, sizes: dict[str, float], label: str) -> ConditionRun | None:
        return self.runs.get((_point_key(sizes), label))

    def add(self, sizes: dict[str, float], run: ConditionRun) -> None:
        self.runs[(_point_key(sizes), run.condition)] = run
        if self.path is not None:
            with self.path.open("a") as fh:
                fh.write(json.dumps({"sizes": sizes, **run.to_dict()}) + "\n")


# ---- the run ---------------------------------------------------------------------------------------

@dataclass
class TransistorSizingResult:
    circuit: TransistorCircuit            # the best point (the start when nothing beat it)
    best: Evaluation
    spec: Spec                            # the spec sizing worked on (sizing_spec)
    plan: MeasurePlan
    runs: list[ConditionRun]              # the best point's measurements, typical first
    points: int                           # points evaluated (snapped duplicates included)
    simulations: int                      # condition runs of distinct points (from the history or new)
    new_simulations: int                  # of those, run in this call (0 for a finished run resumed)
    typical_simulations: int
    passed_typical: int                   # distinct points that met every target at typical
    stop_reason: str                      # "met" or "budget"
    seconds: float
    optimizer_seconds: float
    sims_to_met: int | None = None        # simulations spent when the spec was first met at every condition
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        """The best point meets every target at every condition (measured)."""
        return self.best.met and len(self.runs) == len(self.plan.conditions)

    @property
    def other_simulations(self) -> int:
        return self.simulations - self.typical_simulations

    def to_dict(self) -> dict:
        return {"met": self.met, "stop_reason": self.stop_reason, "points": self.points,
                "simulations": self.simulations, "new_simulations": self.new_simulations,
                "typical_simulations": self.typical_simulations, "other_simulations": self.other_simulations,
                "passed_typical": self.passed_typical, "sims_to_met": self.sims_to_met,
                "shortfall": self.best.shortfall, "min_margin": self.best.min_margin,
                "worst_case": dict(self.best.performance.items()) if self.best.performance else None,
                "conditions": [r.to_dict() for r in self.runs],
                "seconds": self.seconds, "optimizer_seconds": self.optimizer_seconds, "failures": self.failures,
                "sizes": self.circuit.sizes(), "circuit": self.circuit.to_dict()}


#: The transistor level's defaults: a simulation (op + AC) costs ~0.1 s against ~0.1-0.5 s of GP
#: work, so the GP is consulted for the first 30 points only and the local models do the rest.
TRANSISTOR_CONFIG = SizingConfig(budget=200, batch=4, n_initial=6, gp_evals=30, init_sigma=0.2)


def size_transistor(circuit: TransistorCircuit, spec: Spec, conditions: Sequence[Conditions], simulator, *,
                    config: SizingConfig = TRANSISTOR_CONFIG, seed: int = 0, history_path: str | Path | None = None,
                    progress: bool = False, start: TransistorCircuit | None = None,
                    extra_after_met: int | None = None) -> TransistorSizingResult:
    """Size `circuit` against `spec` at `conditions` (cktflow.flow.transistor.conditions_of) within
    `config.budget` simulations, on `simulator` (a LocalSimulator or a SimPool).

    Stops when every target holds at every condition with `config.stop_margin` (objective
    max_margin), else when the budget is spent. For min_power / min_area the run goes on after the
    spec is met, `extra_after_met` simulations more (default: the rest of the budget), lowering
    power or area while the spec holds. `start`: sizes to start from (default the circuit's own)."""
    tech = load_technology(circuit.pdk)
    plan = measure_plan(spec, conditions, tech.default_corner)
    work = sizing_spec(spec, plan)
    space = TransistorSpace.of(circuit)
    minimise = work.objective in ("min_power", "min_area")
    # the Sizer counts points; the budget here counts simulations, so its own point budget is no limit
    cfg = replace(config, budget=10 * config.budget + 10, until_budget=minimise)
    sizer = Sizer(circuit, work, cfg, seed=seed, space=space)
    if start is not None:
        sizer._start = space.snap([start.param(k).value for k in space.names])
    header = {"format": HISTORY_FORMAT, "circuit": circuit.to_dict(), "spec": work.to_dict(),
              "conditions": [c.__dict__ for c in plan.conditions], "seed": seed,
              "start": sizer._start,
              # the budget is left out: a run resumed with a larger budget continues the same sequence
              "config": {k: v for k, v in config.__dict__.items() if k != "budget"}}
    log = SimulationLog(history_path, header)
    dut, name, _ = circuit.dut()      # one DUT text for every job: workers keep it loaded
    seen: dict[str, PointResult] = {}
    counted: set[tuple[str, str]] = set()
    stats = {"new": 0, "typical": 0, "passed": 0}
    sims_to_met = None
    met_at_sims = None
    failed_at: dict[str, int] = {}    # condition label -> points of this run that failed there
    t0 = time.perf_counter()
    bar = _bar(config.budget, progress)

    def job(sizes: dict, cond: Conditions) -> OpampJob:
        return OpampJob(dut, name, tuple(sorted(sizes.items())), conditions=cond, pdk=circuit.pdk,
                        noise=plan.noise, step=plan.step, swing=plan.swing)

    def measure(points: list[dict], cond: Conditions) -> list[ConditionRun]:
        """Each (distinct) point at `cond`, from the history when it is there."""
        out: list[ConditionRun | None] = [log.get(s, cond.label) for s in points]
        order = [i for i, r in enumerate(out) if r is None]

        def done(k: int, res) -> None:
            run = ConditionRun.of(cond.label, res)
            log.add(points[order[k]], run)
            stats["new"] += 1
        run_jobs(simulator, [job(points[i], cond) for i in order], done)
        for i in order:
            out[i] = log.get(points[i], cond.label)
        for s in points:
            key = (_point_key(s), cond.label)
            if key not in counted:
                counted.add(key)
                stats["typical"] += cond is plan.typical
                if bar is not None:     # replayed simulations too: a resumed run's bar starts where it stopped
                    bar.update(1)
        return out  # type: ignore[return-value]

    try:
        while not sizer.done and len(counted) < config.budget:
            if minimise and met_at_sims is not None and extra_after_met is not None \
                    and len(counted) >= met_at_sims + extra_after_met:
                break
            asked = sizer.ask()
            xs = [space.snap(x) for x in asked][:max(1, config.budget - len(counted))]
            if len(xs) < len(asked):
                sizer._phases = type(sizer._phases)(list(sizer._phases)[:len(xs)])
            points = [space.sizes(x) for x in xs]
            keys = [_point_key(p) for p in points]
            at = dict(zip(keys, points))
            fresh = [k for k in dict.fromkeys(keys) if k not in seen]   # distinct, not measured in this run
            runs = {k: [r] for k, r in zip(fresh, measure([at[k] for k in fresh], plan.typical))}
            passing = [k for k in fresh if runs[k][0].ok and work.passes(runs[k][0].performance)]
            stats["passed"] += len(passing)
            # the other conditions, the one that has failed most often first; a point stops at the
            # first condition it fails (module docstring)
            for cond in sorted(plan.conditions[1:], key=lambda c: -failed_at.get(c.label, 0)):
                if not passing:
                    break
                held = []
                for k, r in zip(passing, measure([at[k] for k in passing], cond)):
                    runs[k].append(r)
                    if r.ok and work.passes(r.performance):
                        held.append(k)
                    else:
                        failed_at[cond.label] = failed_at.get(cond.label, 0) + 1
                passing = held
            for k in fresh:
                seen[k] = PointResult(runs[k], work)
            results = [seen[k] for k in keys]
            sizer.tell(xs, results)
            if sims_to_met is None and any(len(r.runs) == len(plan.conditions) and r.ok
                                           and work.passes(r.performance) for r in results):
                sims_to_met = len(counted)
                met_at_sims = len(counted)
            if bar is not None and sizer.best is not None:
                bar.set_postfix(shortfall=f"{sizer.best.shortfall:.3g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    best = sizer.best
    best_point = seen[_point_key(space.sizes(best.x))]
    reason = "met" if best.met and (minimise or sizer._met_with_margin()) else "budget"
    fails: dict[str, int] = {}
    for ev in sizer.history:
        if ev.failure:
            fails[ev.failure] = fails.get(ev.failure, 0) + 1
    return TransistorSizingResult(
        circuit=space.circuit_at(best.x), best=best, spec=work, plan=plan, runs=best_point.runs,
        points=sizer.evaluations, simulations=len(counted), new_simulations=stats["new"],
        typical_simulations=stats["typical"], passed_typical=stats["passed"], stop_reason=reason,
        seconds=time.perf_counter() - t0, optimizer_seconds=sizer.optimizer_seconds, sims_to_met=sims_to_met,
        failures=fails)
