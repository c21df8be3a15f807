"""Load Triton only where it can run, so the kernels' files import everywhere.

The kernels are the GPU's version of maths whose plain torch version (in ``layers/``)
runs anywhere. A CPU-only machine may not have Triton, and importing it there would gain
nothing, so Triton is loaded only when a CUDA GPU is present, or when
``TRITON_INTERPRET=1`` asks it to run kernels on the CPU (how the tests check them
without a GPU). Elsewhere ``jit`` leaves a kernel a plain function nothing launches, and
``tl`` is ``None`` (kernel files use ``from __future__ import annotations``).
"""

from __future__ import annotations

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


# Programmatic dependent launch (Hopper and later, ``Config.pdl``): a kernel launched with it
# may start while the kernel before it is still running, so it must wait (``wait_for_inputs``)
# before it reads anything an earlier kernel wrote, and before it ends. ``use_pdl`` turns it on
# for every kernel of this module's callers that this process launches afterwards (one engine
# a process: ``ModelRunner`` sets it, its ``close`` clears it); off, kernels launch as usual.
PDL = {"on": False}


def use_pdl(on: bool) -> None:
    PDL["on"] = on


def pdl_options() -> dict:
    """A launch's extra arguments: the kernel's USE_PDL flag, and Triton's launch option."""
    return {"USE_PDL": True, "launch_pdl": True} if PDL["on"] else {"USE_PDL": False}


@jit
def wait_for_inputs(USE_PDL: tl.constexpr):
    """Under programmatic launch: wait until the kernel before has finished and its writes are
    visible, then let the next kernel start (it waits in turn). Nothing otherwise."""
    if USE_PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()


@jit
def prefetch_to_l2(pointers):
    """Ask for the 128-byte lines at ``pointers`` to be brought into the L2 cache (PTX
    ``prefetch``), so that loads after ``wait_for_inputs`` find them there; returns zeros."""
    return tl.inline_asm_elementwise("prefetch.global.L2 [$1];\n\tmov.u32 $0, 0;", "=r,l",
                                     [pointers], dtype=tl.int32, is_pure=False, pack=1)


def require_triton() -> None:
    if triton is None:
        raise RuntimeError("Triton is not available: install the 'triton' package on a GPU "
                           "machine, or set TRITON_INTERPRET=1 before importing nanovllm")
