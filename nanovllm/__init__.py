"""nanovllm: a small LLM inference engine, written to be read."""

__version__ = "0.1.0"
