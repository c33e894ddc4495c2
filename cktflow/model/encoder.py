"""Encoders into the shared latent space: one for circuits, one for specs (classes or vectors).

The circuit encoder is a transformer over the node sequence. Each node embeds its type, position,
device values and a topology code (a GIN-style mix of the node's topological-order one-hot with the
predecessor and successor rows of the adjacency), because attention alone does not see edges.
Two learned tokens in front read out the mean and log-variance of the latent.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CktGenConfig
from .data import CircuitTensors

__all__ = ["NodeEmbedding", "CircuitEncoder", "SpecEncoder", "transformer"]


def transformer(config: CktGenConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.d_ff, config.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class NodeEmbedding(nn.Module):
    """type + position + device values (+ the topology code when `topology` is True)."""

    def __init__(self, config: CktGenConfig, topology: bool = True):
        super().__init__()
        d = config.d_model
        self.type_emb = nn.Embedding(config.n_types, d)
        self.pos_emb = nn.Embedding(config.n_pos, d)
        self.values = nn.Sequential(nn.Linear(2 * config.n_kinds, d), nn.GELU(), nn.Linear(d, d))
        self.topo = nn.Linear(config.max_nodes, d) if topology else None

    def forward(self, x: CircuitTensors) -> torch.Tensor:
        vals = torch.cat([x.values * x.vmask, x.vmask.float()], dim=-1)   # (B, L, 2K)
        h = self.type_emb(x.types) + self.pos_emb(x.pos) + self.values(vals)      # (B, L, d)
        if self.topo is not None:
            eye = torch.eye(x.adj.shape[-1], device=x.adj.device).expand_as(x.adj)
            code = eye + x.adj + x.adj.transpose(1, 2)                    # (B, L, L): self, preds, succs
            h = h + self.topo(code)
        return h


class CircuitEncoder(nn.Module):
    """Circuit -> (mu, logvar) in the latent space, each (B, d_latent)."""

    def __init__(self, config: CktGenConfig):
        super().__init__()
        self.embed = NodeEmbedding(config)
        self.readout = nn.Parameter(torch.randn(2, config.d_model) * 0.02)   # mu and logvar tokens
        self.body = transformer(config, config.enc_layers)
        self.norm = nn.LayerNorm(config.d_model)
        self.mu = nn.Linear(config.d_model, config.d_latent)
        self.logvar = nn.Linear(config.d_model, config.d_latent)

    def forward(self, x: CircuitTensors) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.types.shape[0]
        h = torch.cat([self.readout.expand(b, -1, -1), self.embed(x)], dim=1)     # (B, 2 + L, d)
        pad = torch.cat([torch.zeros(b, 2, dtype=torch.bool, device=h.device), ~x.nmask], dim=1)
        h = self.norm(self.body(h, src_key_padding_mask=pad))
        return self.mu(h[:, 0]), self.logvar(h[:, 1])


class SpecEncoder(nn.Module):
    """Spec -> (mu, logvar). The inputs share the latent: the paper's class triple, the continuous
    vector with a presence mask (a user spec may leave a metric unconstrained), and at a PDK the
    full spec (every metric of the registry, its presence mask and the conditions) when the config
    has full_spec_dim."""

    def __init__(self, config: CktGenConfig):
        super().__init__()
        d = config.d_model
        self.class_tables = nn.ModuleList(nn.Embedding(n, d) for n in config.class_sizes)
        self.from_classes = nn.Sequential(nn.Linear(len(config.class_sizes) * d, d), nn.GELU())
        self.from_vector = nn.Sequential(nn.Linear(2 * config.spec_dim, d), nn.GELU(), nn.Linear(d, d), nn.GELU())
        heads = ("class", "vector", "full") if config.full_spec_dim else ("class", "vector")
        self.mu = nn.ModuleDict({k: nn.Linear(d, config.d_latent) for k in heads})
        self.logvar = nn.ModuleDict({k: nn.Linear(d, config.d_latent) for k in heads})
        # the same layout as from_vector (masked values, then the mask), the conditions after it
        self.from_full = (nn.Sequential(nn.Linear(2 * config.full_spec_dim + config.condition_dim, d), nn.GELU(),
                                        nn.Linear(d, d), nn.GELU()) if config.full_spec_dim else None)

    def encode_classes(self, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """classes: (B, 3) long -> mu, logvar (B, d_latent)."""
        h = torch.cat([t(classes[:, i]) for i, t in enumerate(self.class_tables)], dim=-1)
        h = self.from_classes(h)
        return self.mu["class"](h), self.logvar["class"](h)

    def encode_vector(self, spec: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """spec: (B, spec_dim) normalised values; present: (B, spec_dim) bool -> mu, logvar."""
        h = self.from_vector(torch.cat([spec * present, present.float()], dim=-1))
        return self.mu["vector"](h), self.logvar["vector"](h)

    def encode_full(self, spec: torch.Tensor, present: torch.Tensor, conditions: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """spec, present: (B, full_spec_dim); conditions: (B, condition_dim) -> mu, logvar."""
        if self.from_full is None:
            raise ValueError("this model reads gain, UGF and PM only (its config has no full_spec_dim)")
        spec = torch.where(present, spec, torch.zeros_like(spec))     # NaN where absent never leaks in
        h = self.from_full(torch.cat([spec, present.float(), conditions], dim=-1))
        return self.mu["full"](h), self.logvar["full"](h)
