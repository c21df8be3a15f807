"""RMSNorm, with the residual addition fused in.

RMSNorm rescales a vector to unit root-mean-square and multiplies by a learned gain;
unlike LayerNorm it does not subtract the mean. Statistics are taken in float32 even
when the model runs in bf16, because a sum of squares over thousands of features
loses too many bits in 8-bit mantissas.

Every decoder block does ``residual = residual + x`` and then normalises the sum.
Doing both in one call (``forward(x, residual)``) returns the normalised sum *and*
the new residual, which saves the model a pass over memory and keeps its code short.

The maths lives in two plain functions. In eager PyTorch each is half a dozen small
kernels (cast, square, mean, rsqrt, two multiplies); the model runner may hand them to
``torch.compile``, which fuses each into one kernel (see ``engine/torch_compile.py``).
"""

import torch
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    residual = x + residual
    return rms_norm(residual, weight, eps), residual


class RMSNorm(nn.Module):
    # Looked up on the instance, so that torch_compile.py can swap in compiled versions.
    norm = staticmethod(rms_norm)
    add_norm = staticmethod(add_rms_norm)

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return self.norm(x, self.weight, self.eps)
        return self.add_norm(x, residual, self.weight, self.eps)
