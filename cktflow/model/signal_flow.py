"""A circuit encoder that follows the signal: the graph networks of the predictor and the evaluator.

A GRU passes a state from every node to its successors in topological order (gain and phase build
up along signal paths), a second GRU runs backward from the output, and the output node, the input
node and the mean are read out. Measured against the generator's attention encoder as a
performance regressor (30 epochs, held-out value draws of training topologies): both name the
class triple about 28 % of the time, but this network trains in half the time per epoch on the CPU;
with the label PM as an angle and 60 epochs it reaches 37 %.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import CktGenConfig
from .data import CircuitTensors
from .encoder import NodeEmbedding

__all__ = ["SignalFlowEncoder", "standardised", "VALUE_CENTRE", "VALUE_SPREAD"]

#: The OCB generator's values span about [0.25, 0.8] of the PDK's log range (R, C) and [0.4, 0.8]
#: (gm); centred and spread to unit scale they train several times faster.
VALUE_CENTRE, VALUE_SPREAD = 0.6, 5.0


def standardised(x: CircuitTensors) -> CircuitTensors:
    """The same circuits with device values centred and spread (absent devices stay 0)."""
    return dataclasses.replace(x, values=(x.values - VALUE_CENTRE) * VALUE_SPREAD * x.vmask)


class SignalFlowEncoder(nn.Module):
    """Circuits (standardised tensors) -> (B, 3 d) readout: output node, input node, mean."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.embed = NodeEmbedding(CktGenConfig(d_model=d), topology=False)
        self.forward_cell = nn.GRUCell(d, d)
        self.backward_cell = nn.GRUCell(d, d)

    def forward(self, x: CircuitTensors) -> torch.Tensor:
        e = self.embed(x)
        b, n, _ = e.shape
        zero = e.new_zeros(b, self.d)
        real = x.nmask.float()[..., None]
        fwd: list[torch.Tensor] = []
        for i in range(n):              # nodes are in topological order: predecessors come first
            msg = (x.adj[:, i, :i, None] * torch.stack(fwd, 1)).sum(1) if i else zero
            fwd.append(self.forward_cell(e[:, i], msg) * real[:, i])
        h = torch.stack(fwd, 1)
        bwd: list[torch.Tensor] = [zero] * n
        for i in reversed(range(n)):
            msg = (x.adj[:, i + 1:, i, None] * torch.stack(bwd[i + 1:], 1)).sum(1) if i < n - 1 else zero
            bwd[i] = self.backward_cell(h[:, i], msg) * real[:, i]
        last = x.nmask.sum(1) - 1                        # the output node ends every sequence
        out = h[torch.arange(b, device=h.device), last]
        mean = (h * real).sum(1) / real.sum(1).clamp(min=1)
        return torch.cat([out, bwd[0], mean], -1)
