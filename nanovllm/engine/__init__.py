"""The engine: control plane (sequence, block_manager, scheduler, trace; pure Python, no torch)
and data plane (model_runner, llm_engine; torch). This package imports nothing."""
