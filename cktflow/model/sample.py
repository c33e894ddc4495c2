"""From a spec to circuits: spec -> latent -> (guidance) -> decoder -> (refinement) -> valid,
distinct circuits.

Classifier guidance (which the reference CktGen code only trains, never applies): before decoding,
each sampled latent takes a few gradient steps that raise the spec heads' agreement with the
target: cross-entropy of the target classes in the paper's class mode, a hinge on the spec's
bounds in continuous mode. Invalid decodes are rejected and resampled; duplicates (same canonical
hash) are dropped. Refinement: after decoding, the model's performance predictor moves each
circuit's device values toward the target (cktflow.model.predictor), keeping its topology.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..circuit import Circuit, load_pdk, one_topology_at_a_time
from ..circuit.validity import is_valid
from ..spec import Spec
from .checkpoint import default_checkpoint, load_checkpoint, model_from_checkpoint
from .data import (GAIN_SCALE_DB, LOG_UGF_OFFSET, PM_SCALE_DEG, SPEC_DIM, CircuitTensors, decode_circuit,
                   encode_circuits)
from .network import CktGen
from .predictor import PerformancePredictor, UsableTarget, bound_distance, class_distance, load_predictor, \
    predictor_path, refine_values, usable_distance

__all__ = ["default_checkpoint", "load_model", "load_refinement", "Refinement", "Guidance", "VectorTarget",
           "vector_target", "sample_latents", "guide", "decode_latents", "generate_for_classes",
           "generate_for_vector", "propose", "propose_with_model", "refine_for_spec", "predicted_shortfall",
           "propose_wider"]

log = logging.getLogger(__name__)

#: How far inside a one-sided bound the conditioning target sits (normalised units: 10 dB,
#: 0.3 decades, 10 degrees): a spec "gain >= 60 dB" asks for circuits above 60 dB, not at 60 dB.
TARGET_MARGIN = (0.1, 0.3, 10.0 / PM_SCALE_DEG)
#: Metrics of a Spec the continuous conditioning understands, with their index in the vector.
VECTOR_METRICS = {"gain_db": 0, "ugf_hz": 1, "pm_deg": 2}
#: Latent temperatures of alternate proposal batches. At 1.0 guided latents collapse onto a few
#: topologies (5-17 distinct in 64 decodes, measured on test specs), and the best-ranked 20 were
#: often one topology with near-identical values; 2.0 doubles the distinct topologies.
PROPOSAL_TEMPERATURES = (1.0, 2.0)
#: The closed loop's second, wider proposal (cktflow.flow.loop.generate, when ngspice finds too few first
#: candidates meeting the spec): latents at 3x the spec posterior's spread. For the specs the first
#: batch missed, it holds 1-5 topologies and the wider one 19-20, one or more meeting the spec
#: (development specs: bench/autodesign.py --skip 100, never the benchmark's own 100).
WIDER_TEMPERATURES = (3.0,)
#: added to the seed of the wider proposal, so its latents are not the first batch's rescaled
WIDER_SEED = 1_000_000

_MODELS: dict[tuple[str, str], CktGen] = {}
_PREDICTORS: dict[tuple[str, str], PerformancePredictor | None] = {}


def load_model(checkpoint: str | Path | None = None, device: str = "cpu") -> CktGen:
    """A model in eval mode from a checkpoint (the shipped one by default); cached per path."""
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    key = (str(path.resolve()), str(device))
    if key not in _MODELS:
        _MODELS[key] = model_from_checkpoint(load_checkpoint(path, device), device)
    return _MODELS[key]


@dataclass(frozen=True)
class Refinement:
    """After decoding, the performance predictor moves each candidate's device values toward the
    target (cktflow.model.predictor.refine_values); the topology stays. `margin` narrows the target
    before aiming at it: a share of a class interval or window, or of TARGET_MARGIN for a one-sided
    bound."""
    predictor: PerformancePredictor
    steps: int = 100
    lr: float = 0.01
    margin: float = 0.2


def load_refinement(checkpoint: str | Path | None = None, device: str = "cpu") -> Refinement | None:
    """The refinement of a model: its predictor.pt beside the checkpoint, or None when it has none
    (a model trained with --no-predictor); cached per path."""
    path = predictor_path(checkpoint or default_checkpoint())
    key = (str(path.resolve()), str(device))
    if key not in _PREDICTORS:
        _PREDICTORS[key] = load_predictor(path, device) if path.is_file() else None
        if _PREDICTORS[key] is None:
            log.info("no %s beside the model: decoded device values are not refined", path)
    predictor = _PREDICTORS[key]
    return Refinement(predictor) if predictor is not None else None


@dataclass(frozen=True)
class Guidance:
    """Gradient steps on the latent before decoding (steps 0 turns guidance off)."""
    steps: int = 20
    lr: float = 0.05
    prior: float = 0.05      # pull back toward the spec posterior mean, so z stays where decodes are sane


@dataclass(frozen=True)
class VectorTarget:
    """A continuous spec in the model's normalised units: the conditioning point and the bounds."""
    value: torch.Tensor      # (SPEC_DIM,) conditioning input
    present: torch.Tensor    # (SPEC_DIM,) bool
    lower: torch.Tensor      # (SPEC_DIM,) -inf where unbounded
    upper: torch.Tensor      # (SPEC_DIM,) +inf where unbounded


def _normalise(metric: str, value: float) -> float:
    if metric == "gain_db":
        return value / GAIN_SCALE_DB
    if metric == "ugf_hz":
        return math.log10(value) - LOG_UGF_OFFSET
    return value / PM_SCALE_DEG


def vector_target(spec: Spec) -> VectorTarget:
    """Map a Spec's bounds on gain_db, ugf_hz and pm_deg onto the model's spec vector."""
    value = torch.zeros(SPEC_DIM)
    present = torch.zeros(SPEC_DIM, dtype=torch.bool)
    lower = torch.full((SPEC_DIM,), -math.inf)
    upper = torch.full((SPEC_DIM,), math.inf)
    for b in spec.targets:
        if b.metric not in VECTOR_METRICS:
            log.info("the model is not conditioned on %s; candidates are not steered toward it", b.metric)
            continue
        i = VECTOR_METRICS[b.metric]
        lo = _normalise(b.metric, b.min) if b.min is not None else None
        hi = _normalise(b.metric, b.max) if b.max is not None else None
        if lo is not None and hi is not None:
            value[i] = 0.5 * (lo + hi)
        elif lo is not None:
            value[i] = lo + TARGET_MARGIN[i]
        else:
            value[i] = hi - TARGET_MARGIN[i]
        present[i] = True
        lower[i] = lo if lo is not None else -math.inf
        upper[i] = hi if hi is not None else math.inf
    if not bool(present.any()):
        raise ValueError("the spec bounds none of gain_db, ugf_hz, pm_deg, which the model is conditioned on")
    return VectorTarget(value, present, lower, upper)


def sample_latents(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator,
                   temperature: float = 1.0) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device)
    return mu + temperature * eps * (0.5 * logvar).exp()


def guide(model: CktGen, z: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
          guidance: Guidance, anchor: torch.Tensor | None = None) -> torch.Tensor:
    """Move z down the gradient of objective(z) (a per-latent loss, (N,)), `steps` times."""
    if guidance.steps <= 0:
        return z
    anchor = z.detach() if anchor is None else anchor
    z = z.detach().clone().requires_grad_(True)
    for _ in range(guidance.steps):
        loss = objective(z) + guidance.prior * ((z - anchor) ** 2).sum(-1)
        (grad,) = torch.autograd.grad(loss.sum(), z)
        with torch.no_grad():
            z -= guidance.lr * grad
    return z.detach()


def class_objective(model: CktGen, classes: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Negative log-likelihood of the target class triple under the class heads."""
    def objective(z: torch.Tensor) -> torch.Tensor:
        logits, _ = model.heads(z)
        return sum(F.cross_entropy(lg, classes[:, i], reduction="none") for i, lg in enumerate(logits))
    return objective


def vector_objective(model: CktGen, target: VectorTarget, slack: float = 0.05
                     ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hinge: how far the predicted spec vector is outside the bounds (tightened by `slack`), the
    three metrics weighted alike."""
    slacks = torch.full((SPEC_DIM,), slack)

    def objective(z: torch.Tensor) -> torch.Tensor:
        _, pred = model.heads(z)
        return bound_distance(pred, target.lower, target.upper, slacks, weights=(1.0, 1.0, 1.0))
    return objective


def model_device(model: CktGen) -> torch.device:
    return next(model.parameters()).device


def decode_latents(model: CktGen, z: torch.Tensor) -> list[Circuit | None]:
    """Decode latents into circuits; None where the node sequence is not even a graph we can build."""
    pdk = load_pdk()
    x: CircuitTensors = model.decoder.generate(z)
    out: list[Circuit | None] = []
    types, pos, values, adj, nmask = (t.cpu() for t in (x.types, x.pos, x.values, x.adj, x.nmask))
    for i in range(z.shape[0]):
        n = int(nmask[i].sum())
        try:
            out.append(decode_circuit(types[i, :n].tolist(), pos[i, :n].tolist(), values[i, :n].numpy(),
                                      adj[i, :n, :n].numpy(), pdk))
        except ValueError:
            out.append(None)
    return out


def _valid(c: Circuit | None) -> bool:
    return c is not None and is_valid(c)


@torch.no_grad()
def _spec_latents(model: CktGen, classes: torch.Tensor | None, target: VectorTarget | None, n: int):
    dev = model_device(model)
    if classes is not None:
        return model.encode_classes(classes.to(dev))
    value = target.value.to(dev).expand(n, -1)
    present = target.present.to(dev).expand(n, -1)
    return model.encode_vector(value, present)


def generate_for_classes(model: CktGen, classes: torch.Tensor, *, guidance: Guidance | None = Guidance(),
                         seed: int = 0, max_tries: int = 10, candidates: int = 1, refine: Refinement | None = None
                         ) -> tuple[list[Circuit | None], list[float]]:
    """One circuit per row of classes (N, 3).

    Each try samples `candidates` latents per row (guided unless guidance is None) and decodes them;
    valid decodes have their device values refined toward the target classes when `refine` is
    given; with more than one candidate, the valid decode that the model's own class heads (on its
    re-encoding) find most likely to have the target classes is kept. Rows left without a valid
    circuit try again, up to max_tries times (None if never valid). Also returns, per row, the
    share of valid decodes in the first try (the validity the paper reports).
    """
    model.eval()
    dev = model_device(model)
    gen = torch.Generator(device=dev).manual_seed(seed)
    classes = classes.to(dev)
    mu, logvar = _spec_latents(model, classes, None, len(classes))
    result: list[Circuit | None] = [None] * len(classes)
    first_valid = [0.0] * len(classes)
    todo = torch.arange(len(classes))
    for attempt in range(max_tries):
        rows = todo.repeat_interleave(candidates)
        z = sample_latents(mu[rows], logvar[rows], gen)
        if guidance is not None and guidance.steps > 0:
            z = guide(model, z, class_objective(model, classes[rows]), guidance, anchor=mu[rows])
        decoded = decode_latents(model, z)
        valid = [_valid(c) for c in decoded]
        ok = [j for j, v in enumerate(valid) if v]
        if ok and refine is not None:
            targets = classes[rows[ok]]
            refined = refine_values(refine.predictor, [decoded[j] for j in ok],
                                    lambda pred, at: class_distance(pred, targets[at], refine.margin),
                                    steps=refine.steps, lr=refine.lr)
            for j, c in zip(ok, refined):
                decoded[j] = c
        score = torch.full((len(decoded),), math.inf)
        if ok and candidates > 1:
            with torch.no_grad():
                mu_c, _ = model.encode(encode_circuits([decoded[j] for j in ok]).to(dev))
                score[ok] = class_objective(model, classes[rows[ok]])(mu_c).cpu()
        elif ok:
            score[ok] = 0.0
        left = []
        for r, k in enumerate(todo.tolist()):
            block = range(r * candidates, (r + 1) * candidates)
            if attempt == 0:
                first_valid[k] = sum(valid[j] for j in block) / candidates
            best = min(block, key=lambda j: float(score[j]))
            if math.isfinite(float(score[best])):
                result[k] = decoded[best]
            else:
                left.append(k)
        if not left:
            break
        todo = torch.tensor(left)
    return result, first_valid


def generate_for_vector(model: CktGen, target: VectorTarget, n: int, *, guidance: Guidance | None = Guidance(),
                        seed: int = 0, temperature: float = 1.0) -> list[Circuit | None]:
    """n decodes for one continuous target (invalid ones as they come, for measuring validity)."""
    model.eval()
    gen = torch.Generator(device=model_device(model)).manual_seed(seed)
    mu, logvar = _spec_latents(model, None, target, n)
    z = sample_latents(mu, logvar, gen, temperature)
    if guidance is not None and guidance.steps > 0:
        z = guide(model, z, vector_objective(model, target), guidance, anchor=mu)
    return decode_latents(model, z)


@torch.no_grad()
def predicted_shortfall(model: CktGen, circuits: Sequence[Circuit], target: VectorTarget) -> torch.Tensor:
    """The spec heads' view of each decoded circuit: hinge distance outside the spec's bounds."""
    mu, _ = model.encode(encode_circuits(circuits).to(model_device(model)))
    return vector_objective(model, target, slack=0.0)(mu).cpu()


def refine_for_spec(refine: Refinement, circuits: Sequence[Circuit], target: VectorTarget,
                    usable: UsableTarget = UsableTarget()) -> list[Circuit]:
    """`circuits` with device values moved toward a continuous spec's bounds, each bound tightened
    by `refine.margin` of its window (both bounds given) or of TARGET_MARGIN (one bound), and toward
    its usable-in-feedback targets (stable, pm_min, peaking) when the predictor reads them."""
    width = target.upper - target.lower
    one_sided = refine.margin * torch.tensor(TARGET_MARGIN)
    margin = torch.where(torch.isfinite(width), refine.margin * width, one_sided)
    return refine_values(refine.predictor, circuits,
                         lambda pred, at: bound_distance(pred, target.lower, target.upper, margin)
                         + usable_distance(pred, usable),
                         steps=refine.steps, lr=refine.lr)


def propose(spec: Spec, n: int, checkpoint: str | Path | None = None, guidance: bool = True, seed: int = 0,
            *, refine: bool = True, max_batches: int = 20, batch: int = 64,
            temperatures: Sequence[float] = PROPOSAL_TEMPERATURES) -> list[Circuit]:
    """Up to n distinct valid circuits for a continuous spec, the most promising first.

    Samples latents from the spec encoder, applies classifier guidance (unless guidance=False),
    decodes, rejects invalid graphs and duplicates, and keeps sampling until it holds about 3n
    candidates (or max_batches batches ran); refines their device values with the model's
    performance predictor (unless refine=False or the model has none); ranks them by the spec
    heads' predicted shortfall and returns n best first, one topology at a time
    (`cktflow.circuit.one_topology_at_a_time`). Fewer than n come back only when the model cannot
    produce that many distinct valid circuits. Batch k samples at temperatures[k % len(temperatures)].
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return propose_with_model(load_model(checkpoint), spec, n, guidance=guidance, seed=seed,
                              refine=load_refinement(checkpoint) if refine else None,
                              max_batches=max_batches, batch=batch, temperatures=temperatures)


def propose_with_model(model: CktGen, spec: Spec, n: int, *, guidance: bool = True, seed: int = 0,
                       refine: Refinement | None = None, max_batches: int = 20, batch: int = 64,
                       temperatures: Sequence[float] = PROPOSAL_TEMPERATURES) -> list[Circuit]:
    """`propose` with a model (and its refinement) already in memory (evaluation loops, fine-tuned
    models); batch k samples its latents at temperatures[k % len(temperatures)]."""
    target = vector_target(spec)
    seen: dict[str, Circuit] = {}
    want = 3 * n
    steer = Guidance() if guidance else None
    for k in range(max_batches):
        size = max(batch, want - len(seen))
        temperature = temperatures[k % len(temperatures)]
        for c in generate_for_vector(model, target, size, guidance=steer, seed=seed * 1000 + k,
                                     temperature=temperature):
            if _valid(c):
                seen.setdefault(c.canonical_hash(), c)
        if len(seen) >= want:
            break
    cands = list(seen.values())
    if not cands:
        log.warning("the model produced no valid circuit for spec %s", spec.name)
        return []
    usable = UsableTarget.of(spec)
    if refine is not None:
        cands = list({c.canonical_hash(): c for c in refine_for_spec(refine, cands, target, usable)}.values())
    score = predicted_shortfall(model, cands, target)
    if refine is not None and refine.predictor.predicts_usable and not usable.empty:
        # the spec heads know nothing of stability: the predictor's view of the usable targets
        # joins the ranking, so a candidate predicted to ring or oscillate goes to the back
        with torch.no_grad():
            pred = refine.predictor.predict(cands)
        score = score + usable_distance(pred, usable, pm_margin=0.0, peaking_margin=0.0)
    order = sorted(range(len(cands)), key=lambda i: (float(score[i]), i))
    return one_topology_at_a_time([cands[i] for i in order])[:n]


def propose_wider(model: CktGen, spec: Spec, n: int, *, guidance: bool = True, seed: int = 0,
                  refine: Refinement | None = None,
                  temperatures: Sequence[float] = WIDER_TEMPERATURES) -> list[Circuit]:
    """The closed loop's second proposal for a spec whose first candidates (`propose_with_model` with
    the same seed) all missed: n more, sampled wider (WIDER_TEMPERATURES) from other latents."""
    return propose_with_model(model, spec, n, guidance=guidance, seed=seed + WIDER_SEED, refine=refine,
                              temperatures=temperatures)
