"""Attention-side kernels: each file holds a Triton kernel and a plain-torch reference."""
