"""The sizing loop: scikit-optimize's ask/tell `Optimizer` over log-scaled device values.

Why the loop looks like this (stack-notes.md, "Bayesian sizing cost"): one OCB simulation takes a
few milliseconds, while every GP refit plus acquisition search takes a large fraction of a second
and grows with the history. So the optimiser, not ngspice, sets the wall time, and the loop budgets it:

* The run starts from the circuit's own values (told first), then a few coordinated perturbations
  of them (all values of one device kind moved together: the directions that move gain and
  frequency most in a gm/R/C network).
* Each batch then mixes `model_share` points where local linear models of the spec's metrics
  predict the bounds are best met (a trust-region step, cktflow.sizing.surrogate), `gp_share`
  points asked from the GP (constant-liar batch ask, acquisition optimised by sampling, not
  L-BFGS) and perturbations of the incumbent in log space.
* After `gp_evals` evaluations the GP is no longer refitted (its history stays capped there) and
  the rest of the budget goes to the cheap local search, whose step size adapts to success.
* `size_many` runs several sizers in lockstep, so one simulation batch serves all of them.

A run stops as soon as every target is met with `stop_margin` (normalised, as in `Spec.margin`), or
when `budget` simulations are spent. The history of (x, y) is appended to a JSON-lines file when
given; a resumed run replays it with `tell` and continues where it stopped.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from spice_sim import SimResult

from ..circuit import Circuit, Pdk
from ..fsutil import atomic_write_text
from ..spec import Spec
from .objective import Evaluation
from .space import SearchSpace

__all__ = ["SizingConfig", "SizingResult", "Sizer", "size", "size_many", "HISTORY_FORMAT"]

log = logging.getLogger(__name__)

HISTORY_FORMAT = "cktflow-sizing-history/1"


@dataclass(frozen=True)
class SizingConfig:
    budget: int = 200            # simulations per circuit, its start point included
    batch: int = 4               # points asked (and simulated in parallel) per round
    stop_margin: float = 0.01    # normalised margin every target must clear before the run stops
    n_initial: int = 4           # start point + perturbations of it before the GP is consulted
    gp_evals: int = 40           # evaluations the GP is fitted on; later rounds are local search only
    gp_share: float = 0.25       # share of each batch asked from the GP while it is in use
    model_share: float = 0.75    # share of each batch from the local metric models (0: off)
    trust_radius: float = 0.5    # initial step bound of the metric-model steps, decades
    acq_points: int = 500        # random points the acquisition function is evaluated on per ask
    init_sigma: float = 0.3      # local-search step, decades (standard deviation per changed value)
    until_budget: bool = False   # keep optimising the secondary goal after the spec is met

    def __post_init__(self):
        for name in ("budget", "batch", "n_initial"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("gp_share", "model_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)}")
        if self.trust_radius <= 0:
            raise ValueError(f"trust_radius must be > 0, got {self.trust_radius}")
        if self.stop_margin < 0:
            raise ValueError(f"stop_margin must be >= 0, got {self.stop_margin}")


@dataclass
class SizingResult:
    circuit: Circuit                 # the best circuit found (the start circuit when nothing beat it)
    best: Evaluation
    evaluations: int                 # simulations spent
    stop_reason: str                 # "met" (with the margin) or "budget"
    seconds: float
    optimizer_seconds: float         # ask/tell time, the part the simulator does not explain
    failures: dict[str, int] = field(default_factory=dict)
    evals_to_met: int | None = None  # simulations until the spec was first met (any margin)

    @property
    def met(self) -> bool:
        """Every target holds on the best point (measured, not predicted)."""
        return self.best.met

    def to_dict(self) -> dict:
        return {"met": self.met, "stop_reason": self.stop_reason, "evaluations": self.evaluations,
                "evals_to_met": self.evals_to_met, "shortfall": self.best.shortfall,
                "min_margin": self.best.min_margin,
                "performance": self.best.performance.to_dict() if self.best.performance else None,
                "seconds": self.seconds, "optimizer_seconds": self.optimizer_seconds,
                "failures": self.failures, "circuit": self.circuit.to_dict()}


class Sizer:
    """Ask/tell sizing of one circuit. The caller owns the loop (see `size_many`):

    >>> sizer = Sizer(circuit, spec, seed=1)                       # doctest: +SKIP
    >>> while not sizer.done:
    ...     xs = sizer.ask()
    ...     sizer.tell(xs, simulate([sizer.space.circuit_at(x) for x in xs], pool))
    """

    def __init__(self, circuit: Circuit, spec: Spec, config: SizingConfig = SizingConfig(), seed: int = 0,
                 pdk: Pdk | None = None, history_path: str | Path | None = None,
                 start_result: SimResult | None = None, space=None):
        from skopt import Optimizer
        from skopt.utils import cook_estimator

        self.spec = spec
        self.config = config
        self.seed = seed
        # `space`: another search space with SearchSpace's interface (the transistor level's, over a
        # TransistorCircuit's sizing parameters); default the behavioural device values
        self.space = space if space is not None else SearchSpace.of(circuit, pdk)
        # fixed for the run: read by every ask (start point, local-search centre, model steps)
        self._start = self.space.start()
        self._kinds = [kind for _, kind in self.space.keys]
        dims = self.space.dimensions()
        estimator = cook_estimator("GP", space=dims, random_state=np.random.RandomState(seed), noise="gaussian")
        self._opt = Optimizer(dims, base_estimator=estimator, n_initial_points=config.n_initial,
                              acq_func="EI", acq_optimizer="sampling",
                              acq_optimizer_kwargs={"n_points": config.acq_points},
                              random_state=np.random.RandomState(seed))
        self._rng = np.random.default_rng([seed, 7])
        self._sigma = config.init_sigma
        self._radius = config.trust_radius
        self._log_bounds = np.log10(np.array(self.space.bounds, dtype=float))
        self.history: list[Evaluation] = []
        self.best: Evaluation | None = None
        self.evals_to_met: int | None = None
        self._phases: collections.deque[str] = collections.deque()
        self.optimizer_seconds = 0.0
        self._t0 = time.perf_counter()
        self._path = Path(history_path) if history_path else None
        if self._path is not None:
            self._open_history()
        if start_result is not None and not self.history:
            ev = self._record(self._start, start_result, "start")
            self._tell_optimizer([ev.x], [ev.y])

    # ---- history file --------------------------------------------------------------------------
    def _header(self) -> dict:
        return {"format": HISTORY_FORMAT, "circuit": self.space.circuit.to_dict(), "spec": self.spec.to_dict(),
                "keys": [list(k) for k in self.space.keys], "seed": self.seed}

    def _open_history(self) -> None:
        path = self._path
        if path.is_file() and path.stat().st_size > 0:
            lines = path.read_text().splitlines()
            try:
                header = json.loads(lines[0])
                evals = [Evaluation.from_dict(json.loads(ln)) for ln in lines[1:] if ln.strip()]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: not a sizing history file ({exc})") from None
            mine = self._header()
            for key in ("format", "circuit", "spec", "keys"):
                if header.get(key) != json.loads(json.dumps(mine[key])):
                    raise ValueError(f"{path}: the history belongs to another sizing run ({key} differs)")
            self._replay(evals)
            log.info("resumed %s: %d simulations replayed", path, len(evals))
        else:
            # atomically: a kill while the header is written must not leave a history no rerun can read
            atomic_write_text(path, json.dumps(self._header()) + "\n")

    def _replay(self, evals: list[Evaluation]) -> None:
        for ev in evals:
            self._note(ev)
        if evals:
            self._tell_optimizer([ev.x for ev in evals], [ev.y for ev in evals])

    # ---- ask / tell ----------------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        if self.evaluations >= self.config.budget:
            return True
        return not self.config.until_budget and self._met_with_margin()

    def _met_with_margin(self) -> bool:
        b = self.best
        return b is not None and b.met and b.min_margin is not None and b.min_margin >= self.config.stop_margin

    def ask(self) -> list[list[float]]:
        """The next batch of device-value vectors (at most the budget left)."""
        if self.done:
            return []
        t0 = time.perf_counter()
        n = min(self.config.batch, self.config.budget - self.evaluations)
        points: list[list[float]] = []
        phases: list[str] = []
        if not self.history:
            points.append(list(self._start))
            phases.append("start")
        while len(points) < n and self.evaluations + len(points) < self.config.n_initial:
            points.append(self._initial_point(self.evaluations + len(points) - 1))
            phases.append("init")
        if len(points) < n and self.evaluations >= self.config.n_initial and self.config.model_share > 0:
            stepped = self._model_steps(min(n - len(points), max(1, round(n * self.config.model_share))))
            points += stepped
            phases += ["model"] * len(stepped)
        if (len(points) < n and self.evaluations >= self.config.n_initial
                and self.evaluations + len(points) < self.config.gp_evals):
            n_gp = min(n - len(points), max(1, round(n * self.config.gp_share)))
            with _lean():
                asked = self._opt.ask(n_gp, strategy="cl_min") if n_gp > 1 else [self._opt.ask()]
            points += [list(map(float, x)) for x in asked]
            phases += ["gp"] * len(asked)
        centre = self.best.x if self.best is not None else self._start
        while len(points) < n:
            points.append(self._perturb(centre, self._sigma))
            phases.append("local")
        self._phases = collections.deque(phases)
        self.optimizer_seconds += time.perf_counter() - t0
        return points

    def _model_steps(self, k: int) -> list[list[float]]:
        """Up to k points where the local metric models predict the best objective (none when the
        models cannot be fitted yet)."""
        from .surrogate import fit_models, propose

        done = [ev for ev in self.history if ev.performance is not None]
        if self.best is None or len(done) < 2:
            return []
        centre = np.log10(np.array(self.best.x))
        models = fit_models(self.spec, np.log10(np.array([ev.x for ev in done])), [ev.performance for ev in done],
                            centre, self._radius)
        if models is None:
            return []
        picked = propose(models, self._kinds, self._log_bounds[:, 0], self._log_bounds[:, 1], self._radius, k,
                         self.config.stop_margin, self._rng)
        return [self.space.from_log(list(u)) for u in picked]

    def tell(self, xs: Sequence[Sequence[float]], results: Sequence[SimResult]) -> None:
        """Record the simulated batch; failed simulations are told with the failure penalty."""
        if len(xs) != len(results):
            raise ValueError(f"{len(xs)} points but {len(results)} results")
        t0 = time.perf_counter()
        before = self.best.y if self.best is not None else math.inf
        new = []
        for x, res in zip(xs, results):
            phase = self._phases.popleft() if self._phases else "local"
            x = [float(v) for v in x]
            new.append(Evaluation.of(self.spec, self.space.circuit_at(x), x, res, self.config.stop_margin, phase))
        for ev in new:      # noted only once the whole batch evaluated (a bad x leaves no trace)
            self._note(ev)
            self._append(ev)
        self._tell_optimizer([ev.x for ev in new], [ev.y for ev in new])
        improved = self.best is not None and self.best.y < before
        if any(ev.phase == "model" for ev in new):
            # the trust region grows while the models' steps pay off and shrinks when they do not
            model_improved = improved and self.best.phase == "model"
            self._radius = min(2.0, self._radius * 1.5) if model_improved else self._radius * 0.6
            if self._radius < 0.03:
                self._radius = self.config.trust_radius
        if any(ev.phase == "local" for ev in new):
            self._sigma = min(1.0, self._sigma * 1.5) if improved else self._sigma * 0.7
            if self._sigma < 0.01:   # collapsed around a point that does not improve: widen again
                self._sigma = self.config.init_sigma
        self.optimizer_seconds += time.perf_counter() - t0

    def _record(self, x: list[float], result: SimResult, phase: str) -> Evaluation:
        ev = Evaluation.of(self.spec, self.space.circuit_at(x), x, result, self.config.stop_margin, phase)
        self._note(ev)
        self._append(ev)
        return ev

    def _note(self, ev: Evaluation) -> None:
        self.history.append(ev)
        if self.best is None or ev.y < self.best.y:
            self.best = ev
        if ev.met and self.evals_to_met is None:
            self.evals_to_met = len(self.history)

    def _append(self, ev: Evaluation) -> None:
        if self._path is not None:
            with self._path.open("a") as fh:
                fh.write(json.dumps(ev.to_dict()) + "\n")

    def _tell_optimizer(self, xs: list[list[float]], ys: list[float]) -> None:
        # Refit only while the GP is still asked: past gp_evals its history stays capped.
        n_before = len(self._opt.Xi)
        if n_before >= self.config.gp_evals:
            return
        room = self.config.gp_evals - n_before
        xs, ys = xs[:room], ys[:room]
        with _lean():
            self._opt.tell(xs, ys, fit=self.evaluations < self.config.gp_evals)

    def _initial_point(self, j: int) -> list[float]:
        """The j-th point of the initial design: every value of one device kind shifted together by
        init_sigma decades (kinds in turn, then the same shifts downwards, then random steps). These
        probe the directions that move gain and frequency most, so the metric models fitted next
        know them from the first batch."""
        kinds = sorted(set(self._kinds))
        if j >= 2 * len(kinds):
            return self._perturb(self._start, self.config.init_sigma)
        kind, sign = kinds[j % len(kinds)], (1.0 if j < len(kinds) else -1.0)
        u = [v + sign * self.config.init_sigma * (k == kind)
             for v, k in zip(self.space.to_log(self._start), self._kinds)]
        return self.space.from_log(u)

    def _perturb(self, centre: list[float], sigma: float) -> list[float]:
        """A random step in log10 space: each value changes with probability max(2/d, 0.3)."""
        d = self.space.dims
        u = np.array(self.space.to_log(centre))
        mask = self._rng.random(d) < max(2.0 / d, 0.3)
        if not mask.any():
            mask[self._rng.integers(d)] = True
        u = u + mask * self._rng.normal(0.0, sigma, d)
        return self.space.from_log(list(u))

    def result(self) -> SizingResult:
        if self.best is None:
            raise ValueError("nothing has been simulated yet")
        fails = collections.Counter(ev.failure for ev in self.history if ev.failure)
        return SizingResult(circuit=self.space.circuit_at(self.best.x), best=self.best, evaluations=self.evaluations,
                            stop_reason="met" if self._met_with_margin() else "budget",
                            seconds=time.perf_counter() - self._t0, optimizer_seconds=self.optimizer_seconds,
                            failures=dict(fails), evals_to_met=self.evals_to_met)


def size_many(circuits: Sequence[Circuit], spec: Spec, pool=None, config: SizingConfig = SizingConfig(),
              seed: int = 0, start_results: Sequence[SimResult | None] | None = None, stop_after: int | None = None,
              history_dir: str | Path | None = None, progress: bool = False, pdk: Pdk | None = None,
              total_budget: int | None = None, wave: int | None = None, wave_sims: int = 64
              ) -> list[SizingResult]:
    """Size several circuits in lockstep: each round, the unfinished sizers' batches go to the pool
    in one `simulate` call. Stops when every sizer is done, or when `stop_after` of them have met the
    spec with the margin. `start_results` (the candidates' first simulations) save re-simulating them.
    With `history_dir`, sizer i keeps its history in `history_dir/size-<i>.jsonl` and resumes from it.

    With `total_budget` (new simulations for all sizers together) the budget is shared the way
    successive halving shares it: every sizer gets its initial design, then each round only the
    better half (by best objective so far) is continued, so a hopeless candidate stops costing.

    With `wave`, only the first `wave` circuits are sized at first; whenever `wave_sims` more
    simulations pass without any sizer meeting the spec, the next `wave` circuits join (the caller
    passes them best first). A spec that the first candidates cannot reach then gets fresh
    topologies instead of the rest of the budget on the same ones. A circuit that never joins comes
    back as its start result (1 evaluation), so `wave` needs `start_results`.
    """
    from ..simulate import simulate
    from .serial import SerialPool

    if not circuits:
        return []
    starts = list(start_results) if start_results is not None else [None] * len(circuits)
    if len(starts) != len(circuits):
        raise ValueError(f"{len(circuits)} circuits but {len(starts)} start results")
    if wave is not None and any(r is None for r in starts):
        raise ValueError("sizing in waves needs every circuit's start result")
    hist = Path(history_dir) if history_dir is not None else None
    sizers = [Sizer(c, spec, config, seed=seed + i, pdk=pdk, start_result=r,
                    history_path=hist / f"size-{i}.jsonl" if hist is not None else None)
              for i, (c, r) in enumerate(zip(circuits, starts))]
    own_pool = pool is None
    if own_pool:
        pool = SerialPool()
    bar = _bar(len(sizers) * config.budget, progress)
    if bar is not None:
        bar.update(sum(s.evaluations for s in sizers))
    spent = 0
    joined = len(sizers) if wave is None else max(1, wave)
    wave_start = 0
    try:
        while True:
            met = sum(s._met_with_margin() for s in sizers)
            if met == 0 and joined < len(sizers) and spent - wave_start >= wave_sims:
                joined, wave_start = min(len(sizers), joined + max(1, wave)), spent
            active = [s for s in sizers[:joined] if not s.done]
            if not active or (stop_after is not None and met >= stop_after):
                break
            if total_budget is not None:
                if spent >= total_budget:
                    break
                active = _better_half(active, config.n_initial)
            asked = [(s, s.ask()) for s in active]
            if total_budget is not None:
                asked = _trim(asked, total_budget - spent)
            batch = [s.space.circuit_at(x) for s, xs in asked for x in xs]
            results = simulate(batch, pool, progress=False, step=spec.needs_step())
            spent += len(batch)
            k = 0
            for s, xs in asked:
                s.tell(xs, results[k:k + len(xs)])
                k += len(xs)
            if bar is not None:
                bar.update(len(batch))
                best = min(s.best.shortfall for s in sizers if s.best is not None)
                bar.set_postfix(met=met, best_shortfall=f"{best:.3g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if own_pool:
            pool.close()
    return [s.result() for s in sizers]


def _better_half(active: list[Sizer], n_initial: int) -> list[Sizer]:
    """Sizers still in their initial design, plus the better half of the others by best objective."""
    fresh = [s for s in active if s.evaluations < n_initial]
    rest = sorted((s for s in active if s.evaluations >= n_initial), key=lambda s: s.best.y)
    return fresh + rest[:max(1, math.ceil(len(rest) / 2))] if rest else fresh


def _trim(asked: list[tuple[Sizer, list]], room: int) -> list[tuple[Sizer, list]]:
    """Cut the round's batches so that together they fit in `room` simulations (later sizers first)."""
    out = []
    for s, xs in asked:
        take = xs[:max(0, room)]
        room -= len(take)
        if take:
            out.append((s, take))
    return out


def size(circuit: Circuit, spec: Spec, pool=None, config: SizingConfig = SizingConfig(), seed: int = 0,
         history_path: str | Path | None = None, progress: bool = False, pdk: Pdk | None = None) -> SizingResult:
    """Size one circuit against `spec` (see the module docstring); resumes from `history_path` if it exists."""
    from ..simulate import simulate
    from .serial import SerialPool

    sizer = Sizer(circuit, spec, config, seed=seed, pdk=pdk, history_path=history_path)
    own_pool = pool is None
    if own_pool:
        pool = SerialPool()
    bar = _bar(config.budget, progress)
    if bar is not None:
        bar.update(sizer.evaluations)
    try:
        while not sizer.done:
            xs = sizer.ask()
            results = simulate([sizer.space.circuit_at(x) for x in xs], pool, progress=False, step=spec.needs_step())
            sizer.tell(xs, results)
            if bar is not None:
                bar.update(len(xs))
                bar.set_postfix(shortfall=f"{sizer.best.shortfall:.3g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if own_pool:
            pool.close()
    return sizer.result()


@contextlib.contextmanager
def _lean():
    """GP work on one BLAS thread, without the GP's hyper-parameter bound warnings.

    The GP's matrices are tiny: two BLAS threads on a busy 2-core machine made each fit ~6x slower
    (0.78 s instead of 0.14 s), and the bound warnings are expected for short histories.
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="sim", desc="sizing", leave=False)
