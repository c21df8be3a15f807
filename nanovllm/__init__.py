"""nanovllm: a small LLM inference engine, written to be read.

The configuration and sampling classes are plain Python and import instantly. ``LLM`` pulls in
torch, so it is loaded only when first asked for: the scheduler, its tests and the book's
simulators never pay for (or need) torch.
"""

from nanovllm.config import Config
from nanovllm.sampling_params import SamplingParams

__version__ = "0.1.0"
__all__ = ["LLM", "Config", "SamplingParams"]


def __getattr__(name: str):
    if name == "LLM":
        from nanovllm.llm import LLM

        return LLM
    raise AttributeError(f"module 'nanovllm' has no attribute {name!r}")
