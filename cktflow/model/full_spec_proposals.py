"""From a full spec at a PDK to behavioural topologies worth realising: the full-spec generator's
proposals (cktflow.model.full_spec_training trains it; `cktflow train --pdk sky130` ships it).

Latents are sampled from the full-spec encoder's posterior for the spec's bounds, presence mask and
conditions, at the temperatures the behavioural proposals use, decoded, and invalid graphs and
duplicates dropped until about 3n distinct circuits are held. They are ranked by the full-spec
head's view of each decoded circuit (re-encoded): its predicted figures' distance outside the
spec's bounds, over the metrics the spec names; n come back, one topology at a time.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Sequence

import torch

from ..circuit import Circuit, one_topology_at_a_time
from ..circuit.validity import is_valid
from ..spec import Spec
from .checkpoint import default_checkpoint, load_checkpoint, model_from_checkpoint
from .data import encode_circuits
from .full_spec import FullTarget, full_target
from .network import CktGen
from .sample import PROPOSAL_TEMPERATURES, decode_latents, sample_latents

__all__ = ["generator_path", "shipped_generator", "load_full_spec_model", "is_full_spec", "propose_full",
           "full_shortfall"]

log = logging.getLogger(__name__)

_MODELS: dict[str, CktGen] = {}


def generator_path(pdk: str) -> Path:
    """Where the package keeps a PDK's full-spec generator: cktflow/model/weights/<pdk>_generator.pt."""
    return default_checkpoint().parent / f"{pdk}_generator.pt"


def shipped_generator(pdk: str) -> Path | None:
    path = generator_path(pdk)
    return path if path.exists() else None


def is_full_spec(checkpoint: str | Path) -> bool:
    """Whether a checkpoint's model reads the full spec (else gain, UGF and PM only); read once per
    file (generate asks for every spec of a benchmark or flywheel round)."""
    return _reads_full_spec(str(Path(checkpoint).resolve()))


@functools.lru_cache(maxsize=None)
def _reads_full_spec(path: str) -> bool:
    return bool(load_checkpoint(path)["config"].get("full_spec_dim"))


def load_full_spec_model(checkpoint: str | Path) -> CktGen:
    key = str(Path(checkpoint).resolve())
    if key not in _MODELS:
        model = model_from_checkpoint(load_checkpoint(checkpoint))
        if model.spec_encoder.from_full is None:
            raise ValueError(f"{checkpoint}: this model reads gain, UGF and PM only, not the full spec")
        _MODELS[key] = model
    return _MODELS[key]


@torch.no_grad()
def full_shortfall(model: CktGen, circuits: Sequence[Circuit], target: FullTarget) -> torch.Tensor:
    """The full-spec head's predicted distance outside the spec's bounds (normalised units), per circuit."""
    mu, _ = model.encode(encode_circuits(circuits))
    pred = model.heads.full(mu)
    below = (target.lower - pred).clamp(min=0)
    above = (pred - target.upper).clamp(min=0)
    miss = torch.where(target.present, torch.nan_to_num(below + above, posinf=0.0), torch.zeros_like(pred))
    return miss.sum(-1)


@torch.no_grad()
def propose_full(model: CktGen, spec: Spec, n: int, *, load_f: float, vdd: float, seed: int = 0,
                 batch: int = 64, max_batches: int = 20,
                 temperatures: Sequence[float] = PROPOSAL_TEMPERATURES) -> list[Circuit]:
    """Up to n distinct valid behavioural circuits for the spec at (load_f, vdd), best first."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    model.eval()
    target = full_target(spec, load_f, vdd)
    if not bool(target.present.any()):
        return []
    gen = torch.Generator().manual_seed(seed)
    seen: dict[str, Circuit] = {}
    for k in range(max_batches):
        size = max(batch, 3 * n - len(seen))
        mu, logvar = model.encode_full(target.value.expand(size, -1), target.present.expand(size, -1),
                                       target.conditions.expand(size, -1))
        z = sample_latents(mu, logvar, gen, temperatures[k % len(temperatures)])
        for c in decode_latents(model, z):
            if c is not None and is_valid(c):
                seen.setdefault(c.canonical_hash(), c)
        if len(seen) >= 3 * n:
            break
    cands = list(seen.values())
    if not cands:
        log.warning("the full-spec generator produced no valid circuit for spec %s", spec.name)
        return []
    score = full_shortfall(model, cands, target)
    order = sorted(range(len(cands)), key=lambda i: (float(score[i]), i))
    return one_topology_at_a_time([cands[i] for i in order])[:n]
