"""torch.compile for the small element-wise pieces: norms and activation.

An RMSNorm in eager PyTorch is six kernels (cast, square, mean, rsqrt, two multiplies),
the gated activation two, and each reads and writes its whole input. A CUDA graph takes
away their launch cost but not the kernels themselves. ``torch.compile`` traces such a
piece and generates one fused Triton kernel for it, so the data crosses memory once.

Only the pieces the layers expose as plain functions are compiled (``PIECES``), never
the whole model: the attention kernels are our own, the matrix products are cuBLAS',
and a small compiled surface keeps start-up short. Each function is compiled once per
process with ``dynamic=True`` (the number of tokens is a symbol, so one kernel serves
every batch size). ``ModelRunner`` compiles on a GPU only, if ``enable_torch_compile``.

If the compiler fails (no working toolchain, an unsupported op), the piece falls back to
eager PyTorch with a warning: compiling is an optimisation, never a requirement. An error
that is not the compiler's (out of memory, say) is the step's, and propagates.
"""

import functools
import warnings

import torch

from nanovllm.layers.layernorm import RMSNorm
from nanovllm.models.qwen3 import Qwen3MLP

# module class -> names of the static functions its forward looks up on the instance
PIECES = {
    RMSNorm: ("norm", "add_norm"),
    Qwen3MLP: ("act",),
}


def is_compiler_error(error: Exception) -> bool:
    """Did torch.compile itself fail (tracing, lowering, building a kernel)?"""
    if isinstance(error, torch.OutOfMemoryError):
        return False
    module = type(error).__module__
    return (isinstance(error, torch._dynamo.exc.TorchDynamoException)
            or module.startswith(("torch._inductor", "triton")))


class CompiledOrEager:
    """Calls ``torch.compile(function)``; on a compiler error, warns once and runs eagerly."""

    def __init__(self, function):
        self.function = function
        self.compiled = torch.compile(function, dynamic=True, fullgraph=True)
        self.failed = False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as error:
                if not is_compiler_error(error):
                    raise
                self.failed = True
                warnings.warn(f"torch.compile failed for {self.function.__name__}, running it "
                              f"eagerly: {type(error).__name__}: {error}", stacklevel=2)
        return self.function(*args)


@functools.cache
def compiled(function) -> CompiledOrEager:
    return CompiledOrEager(function)


def compile_small_ops(*roots: torch.nn.Module) -> None:
    """Give every module under ``roots`` the compiled versions of its pieces."""
    for root in roots:
        for module in root.modules():
            for name in PIECES.get(type(module), ()):
                setattr(module, name, compiled(getattr(type(module), name)))
