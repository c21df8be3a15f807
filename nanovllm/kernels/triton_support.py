"""Load Triton only where it can run, so the kernels' files import everywhere.

The kernels are the GPU's version of maths whose plain torch version (in ``layers/``)
runs anywhere. A CPU-only machine may not have Triton, and importing it there would gain
nothing, so Triton is loaded only when a CUDA GPU is present, or when
``TRITON_INTERPRET=1`` asks it to run kernels on the CPU (how the tests check them
without a GPU). Elsewhere ``jit`` leaves a kernel a plain function nothing launches, and
``tl`` is ``None`` (kernel files use ``from __future__ import annotations``).
"""

import importlib
import os

import torch


def _load_triton():
    wanted = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
    if not wanted:
        return None, None
    try:
        return importlib.import_module("triton"), importlib.import_module("triton.language")
    except ImportError:
        return None, None


triton, tl = _load_triton()


def jit(kernel=None, **options):
    """``triton.jit`` where Triton is loaded; otherwise the undecorated function.

    Use as ``@jit`` or with triton.jit's options, e.g. ``@jit(do_not_specialize=[...])``.
    """
    if kernel is None:
        return lambda function: jit(function, **options)
    return triton.jit(kernel, **options) if triton is not None else kernel


def require_triton() -> None:
    if triton is None:
        raise RuntimeError("Triton is not available: install the 'triton' package on a GPU "
                           "machine, or set TRITON_INTERPRET=1 before importing nanovllm")
