"""CktGen: circuit encoder, spec encoder, DAG decoder and spec predictor heads in one module."""

from __future__ import annotations

import torch
from torch import nn

from .config import CktGenConfig
from .data import CircuitTensors
from .decoder import Decoder
from .encoder import CircuitEncoder, SpecEncoder

__all__ = ["CktGen", "SpecHeads", "mlp_head"]


def mlp_head(d_in: int, hidden: int, out: int) -> nn.Sequential:
    """Linear-GELU-Linear: the prediction head of the generator's and the evaluator's latents.

    Checkpoints name its weights by the Sequential's indices (".0." and ".2."), so the layout must
    stay as it is for the shipped weights to load."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, out))


class SpecHeads(nn.Module):
    """Spec predictors on a latent: one classifier per class label and a regressor of the
    continuous spec vector. Trained on circuit latents; at sampling time their gradient steers z."""

    def __init__(self, config: CktGenConfig):
        super().__init__()
        d = config.d_latent
        self.classes = nn.ModuleList(mlp_head(d, 2 * d, n) for n in config.class_sizes)
        self.vector = mlp_head(d, 2 * d, config.spec_dim)
        # at a PDK: the full spec the circuit's measurements give (what ranks proposals there)
        self.full = mlp_head(d, 2 * d, config.full_spec_dim) if config.full_spec_dim else None

    def forward(self, z: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return [head(z) for head in self.classes], self.vector(z)


class CktGen(nn.Module):
    def __init__(self, config: CktGenConfig):
        super().__init__()
        self.config = config
        self.circuit_encoder = CircuitEncoder(config)
        self.spec_encoder = SpecEncoder(config)
        self.decoder = Decoder(config)
        self.heads = SpecHeads(config)

    def encode(self, x: CircuitTensors) -> tuple[torch.Tensor, torch.Tensor]:
        return self.circuit_encoder(x)

    def encode_classes(self, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spec_encoder.encode_classes(classes)

    def encode_vector(self, spec: torch.Tensor, present: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        if present is None:
            present = torch.ones_like(spec, dtype=torch.bool)
        return self.spec_encoder.encode_vector(spec, present)

    def encode_full(self, spec: torch.Tensor, present: torch.Tensor, conditions: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spec_encoder.encode_full(spec, present, conditions)

    def decode(self, z: torch.Tensor, x: CircuitTensors) -> dict[str, torch.Tensor]:
        return self.decoder(z, x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def configure_optimizer(self, lr: float, weight_decay: float, betas: tuple[float, float]
                            ) -> torch.optim.Optimizer:
        """AdamW that decays only matrices (not biases, norms or 1-D parameters)."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)
