"""The paper's learned judge: a separately trained network that embeds circuits and spec classes.

CktGen scores generation with an evaluator GNN trained apart from the generator (alignment,
filtered InfoNCE, class cross-entropy and a performance regression); its embeddings give
R-precision, MM-D, FID and diversity and its class predictions give the surrogate Spec-Acc.
cktflow keeps it to compare with the paper; the headline Spec-Acc is measured by ngspice
(cktflow.model.evaluate). Its circuit side is a signal-flow graph network (cktflow.model.signal_flow):
the first evaluator, a small attention encoder, named the class triple of 25 % of its own training
circuits and 11 % of the test circuits, so it rejected most circuits ngspice confirms.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import CktGenConfig
from .data import CircuitTensors, TensorData
from .encoder import SpecEncoder
from .losses import masked_info_nce
from .network import mlp_head
# the judge regresses the AC performance the paper's evaluator knows, not the usable-in-feedback
# outputs the refiner (predictor.py) added
from .predictor import N_AC_OUTPUTS, prediction_targets
from .signal_flow import SignalFlowEncoder, standardised
from .checkpoint import load_checkpoint, resolve_device, save_checkpoint

__all__ = ["Evaluator", "train_evaluator", "load_evaluator", "EVALUATOR_CONFIG"]

log = logging.getLogger(__name__)

#: The evaluator's own architecture: d_model is the graph network's width (and the spec encoder's),
#: d_latent the embedding size.
EVALUATOR_CONFIG = CktGenConfig(d_model=128, n_heads=4, enc_layers=0, dec_layers=0, d_ff=256, d_latent=64,
                                dropout=0.1)
#: Names the circuit network in the checkpoint; weights of another one do not load.
ARCHITECTURE = "signal-flow"


class Evaluator(nn.Module):
    def __init__(self, config: CktGenConfig):
        super().__init__()
        self.config = config
        self.circuits = SignalFlowEncoder(config.d_model)
        self.to_embedding = nn.Linear(3 * config.d_model, config.d_latent)
        self.specs = SpecEncoder(config)
        d = config.d_latent
        self.classify = nn.ModuleList(mlp_head(d, d, n) for n in config.class_sizes)
        self.regress = mlp_head(d, d, N_AC_OUTPUTS)

    def embed_circuits(self, x: CircuitTensors) -> torch.Tensor:
        return self.to_embedding(self.circuits(standardised(x)))

    def embed_specs(self, classes: torch.Tensor) -> torch.Tensor:
        return self.specs.encode_classes(classes)[0]

    def predict_classes(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, d) circuit embeddings -> (N, 3) predicted gain, bw, pm classes."""
        return torch.stack([head(emb).argmax(-1) for head in self.classify], dim=-1)

    def loss(self, x: CircuitTensors, classes: torch.Tensor, performance: torch.Tensor) -> torch.Tensor:
        c, s = self.embed_circuits(x), self.embed_specs(classes)
        same = (classes[:, None, :] == classes[None, :, :]).all(-1)
        ce = sum(F.cross_entropy(head(c), classes[:, i]) for i, head in enumerate(self.classify))
        reg = F.smooth_l1_loss(self.regress(c), performance, beta=0.05)
        return F.smooth_l1_loss(s, c) + masked_info_nce(c, s, same, 0.1) + ce + reg


def train_evaluator(data: TensorData, path: str | Path, *, epochs: int = 60, batch_size: int = 128,
                    lr: float = 1e-3, seed: int = 0, device: str = "auto", progress: bool = False) -> Evaluator:
    """Train the evaluator on the training split only and save it (state_dict + config) to path."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = Evaluator(EVALUATOR_CONFIG).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    steps = math.ceil(len(data) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps * epochs)
    x_all, cls_all, perf_all = data.x.to(dev), data.classes.to(dev), prediction_targets(data)[:, :N_AC_OUTPUTS].to(dev)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, desc="evaluator", unit="epoch")
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(data)).to(dev)
        total = 0.0
        for k in range(steps):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            if len(idx) < 2:
                continue
            loss = model.loss(x_all.index(idx), cls_all[idx], perf_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log.info("evaluator epoch %d: loss %.4f", epoch + 1, total / steps)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    save_checkpoint(Path(path), {"config": model.config.to_dict(), "model": model.state_dict(), "epochs": epochs,
                                 "architecture": ARCHITECTURE})
    return model


def load_evaluator(path: str | Path, device: str | torch.device = "cpu") -> Evaluator:
    state = load_checkpoint(path, device)
    if state.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path} holds an evaluator of an earlier cktflow (not the {ARCHITECTURE} network); "
                         "delete it, and `cktflow evaluate` trains a new one")
    model = Evaluator(CktGenConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()
