"""The engine: control plane (sequence, block_manager, scheduler, trace; pure Python) and data plane
(model_runner, llm_engine; torch). Import the modules you need: this package imports nothing, so
``import nanovllm.engine.scheduler`` never loads torch."""
