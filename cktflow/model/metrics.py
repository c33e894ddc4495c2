"""The paper's generation metrics, as plain functions of embeddings and validity flags.

Embeddings come from the separately trained evaluator (cktflow.model.evaluator); nothing here
knows about models. Definitions follow CktGen's protocol (cktgen-model.md): R-precision ranks each
generated circuit's true spec among the round's specs by cosine similarity; MM-D is the mean
cosine distance between a generated circuit and its spec; FID is the Frechet distance between
Gaussian fits of generated and real embeddings; diversity is a mean L2 distance between pairs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import linalg

__all__ = ["r_precision", "matching_distance", "frechet_distance", "diversity", "validity_share"]


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def r_precision(circuit_emb: np.ndarray, spec_emb: np.ndarray, top_k: Sequence[int] = (1, 2, 3)) -> dict[int, float]:
    """Share of rows i whose own spec (row i of spec_emb) is among the k specs most cosine-similar
    to circuit i, for each k. Ties count against the true spec (ranked after equal scores)."""
    sim = _unit(circuit_emb) @ _unit(spec_emb).T                  # (N, N)
    true = np.diag(sim)[:, None]
    rank = (sim > true).sum(axis=1) + (sim == true).sum(axis=1) - 1   # 0 = best
    return {k: float(np.mean(rank < k)) for k in top_k}


def matching_distance(circuit_emb: np.ndarray, spec_emb: np.ndarray) -> float:
    """MM-D: mean (1 - cosine) between each circuit and its own spec."""
    return float(np.mean(1.0 - np.sum(_unit(circuit_emb) * _unit(spec_emb), axis=-1)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussian fits to two sets of rows."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("the Frechet distance needs at least two rows in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.all(np.isfinite(covmean)):
        eps = np.eye(s_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = np.real(covmean)
    return float(max(0.0, np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean)))


def diversity(emb: np.ndarray, n_pairs: int = 100, seed: int = 0) -> float:
    """Mean L2 distance over n_pairs random pairs of distinct rows."""
    emb = np.asarray(emb, dtype=float)
    if emb.shape[0] < 2:
        return 0.0
    rng = np.random.RandomState(seed)
    i = rng.randint(0, emb.shape[0], n_pairs)
    j = (i + rng.randint(1, emb.shape[0], n_pairs)) % emb.shape[0]
    return float(np.mean(np.linalg.norm(emb[i] - emb[j], axis=-1)))


def validity_share(valid: Sequence[float]) -> float:
    """Mean of per-item validity (booleans, or shares of valid decodes per item)."""
    return float(np.mean(list(valid))) if len(valid) else 0.0
