"""Triton kernels: the GPU's version of maths whose plain torch version is in ``layers/``."""
