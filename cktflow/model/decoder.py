"""Autoregressive DAG decoder: latent -> node sequence (type, position, values, edges back).

GPT-style: a causal transformer reads [latent token, node 0, ..., node L-2] and the state at step t
predicts node t. The type comes first; the position is predicted knowing the type; device values
and the edges from every earlier node are predicted knowing both. Edge j -> t is scored from the
query of node t and the state that has read node j. Decoding ends at the Out node (type 1), which
comes last in topological order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..circuit.basis import IN_TYPE, NUM_TYPES, OUT_TYPE, POS_IN, POS_OUT
from .config import CktGenConfig
from .data import KIND_MASK, CircuitTensors
from .encoder import NodeEmbedding, transformer

__all__ = ["Decoder", "structure_masks"]


class Decoder(nn.Module):
    def __init__(self, config: CktGenConfig):
        super().__init__()
        d, n = config.d_model, config.max_nodes
        self.config = config
        self.latent = nn.Linear(config.d_latent, d)
        self.node = NodeEmbedding(config, topology=False)
        self.preds = nn.Linear(n, d)                     # which earlier nodes feed this node
        self.step = nn.Embedding(n, d)
        self.body = transformer(config, config.dec_layers)
        self.norm = nn.LayerNorm(config.d_model)
        self.type_head = nn.Linear(d, config.n_types)
        self.type_in = nn.Embedding(config.n_types, d)   # the chosen type, fed to the later heads
        self.pos_in = nn.Embedding(config.n_pos, d)
        self.pos_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.n_pos))
        self.value_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.n_kinds))
        self.edge_q = nn.Linear(d, d)
        self.edge_k = nn.Linear(d, d)
        self.edge_head = nn.Sequential(nn.GELU(), nn.Linear(d, 1))
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)

    def states(self, z: torch.Tensor, x: CircuitTensors) -> torch.Tensor:
        """Hidden states (B, L, d); state t has read the latent and nodes 0..t-1 of x."""
        b, n = x.types.shape
        nodes = self.node(x) + self.preds(x.adj)                                   # (B, L, d)
        seq = torch.cat([self.latent(z)[:, None], nodes[:, : n - 1]], dim=1)      # (B, L, d)
        seq = seq + self.step.weight[None, :n] + self.latent(z)[:, None]
        return self.norm(self.body(seq, mask=self.causal[:n, :n], is_causal=True))

    def heads(self, h: torch.Tensor, types: torch.Tensor, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs given states h and the (teacher-forced or chosen) types and positions."""
        ht = h + self.type_in(types)
        q = ht + self.pos_in(pos)
        # edge j -> t: the query of node t against the state that has read node j (state j + 1)
        keys = torch.cat([h[:, 1:], h[:, -1:]], dim=1)                            # (B, L, d), last unused
        e = self.edge_q(q)[:, :, None] + self.edge_k(keys)[:, None, :]          # (B, L, L, d)
        return {"type": self.type_head(h), "pos": self.pos_head(ht), "values": torch.sigmoid(self.value_head(q)),
                "edge": self.edge_head(e).squeeze(-1)}

    def forward(self, z: torch.Tensor, x: CircuitTensors) -> dict[str, torch.Tensor]:
        """Teacher-forced outputs: type (B,L,T), pos (B,L,P), values (B,L,K), edge logits (B,L,L)."""
        return self.heads(self.states(z, x), x.types, x.pos)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
                 ) -> CircuitTensors:
        """Decode each latent into a node sequence. temperature 0 takes the argmax (as CktGen)."""
        b, n = z.shape[0], self.config.max_nodes
        dev = z.device
        x = CircuitTensors(torch.zeros(b, n, dtype=torch.long, device=dev), torch.zeros(b, n, dtype=torch.long, device=dev),
                           torch.zeros(b, n, self.config.n_kinds, device=dev),
                           torch.zeros(b, n, self.config.n_kinds, dtype=torch.bool, device=dev),
                           torch.zeros(b, n, n, device=dev), torch.zeros(b, n, dtype=torch.bool, device=dev))
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        used = torch.zeros(b, self.config.n_pos, dtype=torch.bool, device=dev)
        kind_mask = KIND_MASK.to(dev)
        for t in range(n):
            states = self.states(z, x)          # state t reads nodes < t; states 1..t are the edge keys
            h = states[:, t]                                                       # (B, d)
            type_mask, _ = structure_masks(t, n, used, None)
            typ = _choose(self.type_head(h).masked_fill(~type_mask, -1e9), temperature, generator)
            _, pos_mask = structure_masks(t, n, used, typ)
            ht = h + self.type_in(typ)
            pos = _choose(self.pos_head(ht).masked_fill(~pos_mask, -1e9), temperature, generator)
            q = ht + self.pos_in(pos)
            vals = torch.sigmoid(self.value_head(q))
            live = ~done
            x.types[live, t], x.pos[live, t], x.nmask[live, t] = typ[live], pos[live], True
            x.values[live, t] = vals[live]
            x.vmask[live, t] = kind_mask[typ[live]]
            if t > 0:
                keys = self.edge_k(states[:, 1 : t + 1])                           # (B, t, d)
                logits = self.edge_head(self.edge_q(q)[:, None] + keys).squeeze(-1)   # (B, t)
                x.adj[live, t, :t] = (logits[live] > 0).float()
            used[live, pos[live]] = True
            done = done | (typ == OUT_TYPE)
            if bool(done.all()):
                break
        x.values.mul_(x.vmask)
        return x


def structure_masks(t: int, n: int, used: torch.Tensor, types: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed types at step t and, given the chosen types, allowed positions (the IR's hard rules).

    The sequence starts with In and ends with Out (forced at the last step); In/Out sit at
    positions 0/1 and every other type elsewhere; no position is used twice.
    """
    b = used.shape[0]
    dev = used.device
    tmask = torch.ones(b, NUM_TYPES, dtype=torch.bool, device=dev)
    if t == 0:
        tmask[:] = False
        tmask[:, IN_TYPE] = True
    else:
        tmask[:, IN_TYPE] = False
        if t == n - 1:
            tmask[:] = False
            tmask[:, OUT_TYPE] = True
    if types is None:
        return tmask, None
    pmask = ~used.clone()
    special = (types == IN_TYPE) | (types == OUT_TYPE)
    pmask[:, POS_IN] &= types == IN_TYPE
    pmask[:, POS_OUT] &= types == OUT_TYPE
    pmask[special] = False
    pmask[types == IN_TYPE, POS_IN] = True
    pmask[types == OUT_TYPE, POS_OUT] = True
    none_left = ~pmask.any(dim=1)
    pmask[none_left] = True     # every slot taken: let the validity check reject it
    return tmask, pmask


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
