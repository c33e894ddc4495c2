"""CktGen's training objective: named terms and their weighted total.

Terms (weights in `LossWeights`): reconstruction of the circuit decoded from the circuit latent
and from a spec latent (type, position, edges, values), the KL terms between the circuit and
spec posteriors and the prior, SmoothL1 alignment of the latent means, bidirectional InfoNCE with
same-spec pairs masked out as negatives (one spec admits many circuits), and the spec predictor
heads on the circuit latent (class cross-entropy and continuous regression).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LossWeights
from .data import CircuitTensors
from .network import CktGen

__all__ = ["reconstruction", "gaussian_kl", "masked_info_nce", "loss_terms", "RECON_TERMS"]

RECON_TERMS = ("type", "pos", "edge", "value")


def reconstruction(out: dict[str, torch.Tensor], x: CircuitTensors) -> dict[str, torch.Tensor]:
    """Mean losses over real nodes / real device values / possible edges (j < i, both real)."""
    m = x.nmask
    type_ce = F.cross_entropy(out["type"][m], x.types[m])
    pos_ce = F.cross_entropy(out["pos"][m], x.pos[m])
    n = x.types.shape[1]
    lower = torch.tril(torch.ones(n, n, dtype=torch.bool, device=m.device), diagonal=-1)
    pairs = lower[None] & m[:, :, None] & m[:, None, :]
    edge = F.binary_cross_entropy_with_logits(out["edge"][pairs], x.adj[pairs])
    vm = x.vmask
    value = F.mse_loss(out["values"][vm], x.values[vm]) if bool(vm.any()) else out["values"].sum() * 0
    return {"type": type_ce, "pos": pos_ce, "edge": edge, "value": value}


def gaussian_kl(mu1: torch.Tensor, lv1: torch.Tensor, mu2: torch.Tensor | None = None,
                lv2: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu1, e^lv1) || N(mu2, e^lv2)), summed over the latent, averaged over the batch.
    Without mu2/lv2 the second distribution is the prior N(0, I)."""
    if mu2 is None:
        mu2, lv2 = torch.zeros_like(mu1), torch.zeros_like(lv1)
    kl = 0.5 * (lv2 - lv1 + (lv1.exp() + (mu1 - mu2) ** 2) / lv2.exp() - 1)
    return kl.sum(-1).mean()


def masked_info_nce(a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, temperature: float) -> torch.Tensor:
    """Bidirectional InfoNCE on cosine similarity; pair (i, j) with same[i, j] and i != j is not a
    negative (it shares the spec, so it is not wrong to match it)."""
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature          # (B, B)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(sim.shape[0], device=sim.device)
    return 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))


def _sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def loss_terms(model: CktGen, x: CircuitTensors, classes: torch.Tensor, spec: torch.Tensor,
               present: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and every named term (unweighted, detached for logging) for one batch.

    classes (B, 3) long; spec (B, spec_dim) the continuous vector; present (B, spec_dim) bool, which
    entries of the vector the spec encoder sees (training hides some, as users leave metrics free).
    """
    b = x.types.shape[0]
    mu_c, lv_c = model.encode(x)
    mu_s, lv_s = model.encode_classes(classes)
    mu_v, lv_v = model.encode_vector(spec, present)
    z_c = _sample(mu_c, lv_c)
    # Decode from the circuit latent and from one spec latent per circuit, the class or the vector
    # one at random: both spec encoders learn to reconstruct at two decoder passes, not three.
    use_class = (torch.rand(b, 1, device=z_c.device) < 0.5)
    z_spec = torch.where(use_class, _sample(mu_s, lv_s), _sample(mu_v, lv_v))
    x2 = CircuitTensors(*(torch.cat([getattr(x, f)] * 2) for f in x.__dataclass_fields__))
    out = model.decode(torch.cat([z_c, z_spec]), x2)                                    # (2B, ...)
    terms: dict[str, torch.Tensor] = {}
    for name, part in (("circuit", 0), ("spec", 1)):
        sl = slice(part * b, (part + 1) * b)
        rec = reconstruction({k: v[sl] for k, v in out.items()}, x)
        for k, v in rec.items():
            terms[f"{k}_{name}"] = v
    kl = gaussian_kl(mu_c, lv_c)
    for mu, lv in ((mu_s, lv_s), (mu_v, lv_v)):
        kl = kl + gaussian_kl(mu, lv, mu_c, lv_c) + gaussian_kl(mu_c, lv_c, mu, lv) + gaussian_kl(mu, lv)
    terms["kl"] = kl
    terms["align"] = F.smooth_l1_loss(mu_s, mu_c) + F.smooth_l1_loss(mu_v, mu_c)
    same = (classes[:, None, :] == classes[None, :, :]).all(-1)                        # (B, B)
    terms["nce"] = (masked_info_nce(mu_s, mu_c, same, weights.nce_temperature)
                    + masked_info_nce(mu_v, mu_c, same, weights.nce_temperature))
    cls_logits, vec = model.heads(z_c)
    terms["cls"] = sum(F.cross_entropy(lg, classes[:, i]) for i, lg in enumerate(cls_logits))
    terms["reg"] = F.mse_loss(vec, spec)
    w = weights
    total = sum(getattr(w, k.split("_")[0]) * v for k, v in terms.items() if k.split("_")[0] in RECON_TERMS)
    total = total + w.kl * terms["kl"] + w.align * terms["align"] + w.nce * terms["nce"]
    total = total + w.cls * terms["cls"] + w.reg * terms["reg"]
    return total, {k: v.detach() for k, v in terms.items()}
