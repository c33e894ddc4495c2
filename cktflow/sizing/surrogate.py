"""Local linear models of each spec metric, and the step they predict is best (a trust region).

Why: the sizing objective is a sum of hinges (zero inside every bound), which a GP over 10-20
device values learns slowly. The metrics themselves are smooth in the log device values (gain in dB,
log UGF and phase move almost linearly for moderate steps), so one linear model per metric, fitted
by weighted least squares on the simulated points nearest the incumbent, predicts where the bounds
are met from a handful of points: a derivative-free trust-region step, as in BOBYQA-style methods,
with the spec's hinges applied to the predicted metrics rather than learned as one number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..spec import Bound, Spec

__all__ = ["MetricModels", "fit_models", "propose"]


def _limits(bound: Bound) -> tuple[float, float]:
    lo = bound.scaled(bound.min) if bound.min is not None else -math.inf
    hi = bound.scaled(bound.max) if bound.max is not None else math.inf
    return lo, hi


@dataclass
class MetricModels:
    """metric_j(u) ~ a_j + g_j . (u - centre), u the log10 device values; one row per bound."""
    centre: np.ndarray     # (d,)
    intercept: np.ndarray  # (m,)
    slope: np.ndarray      # (m, d)
    lo: np.ndarray         # (m,) lower limits (-inf when none)
    hi: np.ndarray         # (m,) upper limits (+inf when none)

    def predict(self, u: np.ndarray) -> np.ndarray:
        """(k, d) points -> (k, m) predicted metrics."""
        return self.intercept[None, :] + (u - self.centre[None, :]) @ self.slope.T

    def score(self, u: np.ndarray, margin: float) -> np.ndarray:
        """Predicted objective per point, as cktflow.sizing.objective scores measurements: the
        shortfall against the bounds tightened by `margin` while positive, minus the smallest
        margin once all are predicted met (so the step aims at the middle of the window)."""
        m = self.predict(u)
        below = np.where(np.isfinite(self.lo), self.lo[None, :] - m, -np.inf)
        above = np.where(np.isfinite(self.hi), m - self.hi[None, :], -np.inf)
        miss = np.maximum(below, above)                      # > 0 outside, < 0 inside (distance to edge)
        gap = np.maximum(miss + margin, 0.0).sum(axis=1)
        return np.where(gap > 0, gap, np.max(miss, axis=1))  # max(miss) = -(smallest margin)


def fit_models(spec: Spec, xs_log: np.ndarray, perf_rows: list, centre: np.ndarray, radius: float,
               ridge: float = 1e-2) -> MetricModels | None:
    """Weighted ridge fit of every bounded metric around `centre` (None with fewer than 2 usable points).

    xs_log (n, d) log10 device values of the simulated points; perf_rows their Performance (None if
    failed). Points far from the centre weigh less (Gaussian in units of the trust radius) so the
    models stay local; the ridge keeps slopes of values that never moved near zero.
    """
    # every bound on a continuous metric: a true/false one (stable) has no slope to fit, and
    # the margins that decide it (pm_min_deg, peaking_db) are fitted beside it
    bounds = [b for b in spec.bounds if b.unit != "bool"]
    d = xs_log.shape[1]
    intercept, slope = np.zeros(len(bounds)), np.zeros((len(bounds), d))
    for j, b in enumerate(bounds):
        rows = [(x, b.scaled(p.get(b.metric))) for x, p in zip(xs_log, perf_rows) if p is not None]
        rows = [(x, y) for x, y in rows if math.isfinite(y)]
        if len(rows) < 2:
            return None
        x = np.stack([r[0] for r in rows]) - centre[None, :]
        y = np.array([r[1] for r in rows])
        w = np.exp(-0.5 * (np.linalg.norm(x, axis=1) / (2.0 * radius)) ** 2) + 1e-6
        a = np.hstack([np.ones((len(y), 1)), x]) * np.sqrt(w)[:, None]
        reg = np.diag([1e-8] + [ridge] * d)
        coef = np.linalg.solve(a.T @ a + reg, a.T @ (y * np.sqrt(w)))
        intercept[j], slope[j] = coef[0], coef[1:]
    lo, hi = zip(*(_limits(b) for b in bounds))
    return MetricModels(centre.copy(), intercept, slope, np.array(lo), np.array(hi))


def propose(models: MetricModels, kinds: list[str], lo_log: np.ndarray, hi_log: np.ndarray, radius: float,
            n: int, margin: float, rng: np.random.Generator, samples: int = 2000) -> list[np.ndarray]:
    """The n sampled steps (within the trust radius, in decades) with the best predicted score.

    Steps are drawn three ways: a common shift per device kind (all C, all R, all gm: the directions
    that move frequency and gain most in a gm/R/C network), a sparse random change of a few values,
    and both together. Returned points are clipped into the PDK's log bounds and distinct.
    """
    d = len(models.centre)
    kind_names = sorted(set(kinds))
    kind_idx = np.array([kind_names.index(k) for k in kinds])
    third = samples // 3
    shift = rng.uniform(-radius, radius, (samples, len(kind_names)))[:, kind_idx]          # (S, d)
    sparse = rng.normal(0.0, radius / 2, (samples, d)) * (rng.random((samples, d)) < max(2.0 / d, 0.3))
    steps = np.concatenate([shift[:third], sparse[third:2 * third], shift[2 * third:] + sparse[2 * third:]])
    steps = np.clip(steps, -radius, radius)
    u = np.clip(models.centre[None, :] + steps, lo_log[None, :], hi_log[None, :])
    order = np.argsort(models.score(u, margin), kind="stable")
    picked: list[np.ndarray] = []
    for i in order:
        if all(np.max(np.abs(u[i] - p)) > 1e-3 for p in picked):
            picked.append(u[i])
        if len(picked) == n:
            break
    return picked
