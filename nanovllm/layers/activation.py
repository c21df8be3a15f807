"""SiLU-and-multiply: the gate of a gated MLP.

The MLP's first projection produces ``[gate, up]`` side by side (one merged matrix
product). The output is ``silu(gate) * up``: the gate decides, feature by feature,
how much of ``up`` passes through.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SiluAndMul(nn.Module):
    def forward(self, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up
