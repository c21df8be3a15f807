"""Rotary position embeddings (RoPE): position enters attention as a rotation.

Each query/key head vector is cut into two halves, and the pair (x1[i], x2[i]) is
rotated by the angle ``position * theta ** (-2i / head_dim)``. Rotating q by its
position and k by its own makes their dot product depend only on the *distance*
between the two tokens, which is what lets a cached key, computed once, stay valid
for every later query. The cosines and sines of every position are computed once,
in float32, and looked up by position at run time; every layer reads the same table.
"""

import torch
from torch import nn


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [tokens, heads, head_dim]; cos, sin: [tokens, 1, head_dim / 2]."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return rotated.to(x.dtype)


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, max_position: int, theta: float):
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        inverse_frequency = 1.0 / (theta ** exponents)
        positions = torch.arange(max_position, dtype=torch.float32)
        angles = torch.outer(positions, inverse_frequency)  # [max_position, head_dim / 2]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
        """q and k, each head rotated by its token's position (new tensors)."""
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        return rotate(q, cos, sin), rotate(k, cos, sin)
