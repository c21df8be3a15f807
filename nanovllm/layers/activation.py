"""SiLU-and-multiply: the gate of a gated MLP.

The MLP's first projection produces ``[gate, up]`` side by side (one merged matrix
product). The output is ``silu(gate) * up``: the gate decides, feature by feature,
how much of ``up`` passes through. Eager PyTorch runs this as two kernels with an
intermediate in memory; ``torch.compile`` makes it one (see ``engine/torch_compile.py``).
"""

import torch
import torch.nn.functional as F
from torch import nn


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


class SiluAndMul(nn.Module):
    # Looked up on the instance, so that torch_compile.py can swap in a compiled version.
    function = staticmethod(silu_and_mul)

    def forward(self, gate_up: torch.Tensor) -> torch.Tensor:
        return self.function(gate_up)
