"""RMSNorm, with the residual addition fused in.

RMSNorm rescales a vector to unit root-mean-square and multiplies by a learned gain;
unlike LayerNorm it does not subtract the mean. Statistics are taken in float32 even
when the model runs in bf16, because a sum of squares over thousands of features
loses too many bits in 8-bit mantissas.

Every decoder block does ``residual = residual + x`` and then normalises the sum.
Doing both in one call (``forward(x, residual)``) returns the normalised sum *and*
the new residual, which saves the model a pass over memory and keeps its code short.
"""

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return self.normalize(x)
        residual = x + residual
        return self.normalize(residual), residual
