"""The model runner: owns the weights, the KV cache and the sampler, and runs one step.

``run(batch)`` is the whole data plane of a step: prepare flat inputs from the
scheduler's batch (``prepare``), run the model over every scheduled token, compute
logits only for the rows that will be sampled, and sample one token per such sequence
with that request's parameters. It returns plain token ids; the scheduler does the
bookkeeping.

That is the plain path, the one a CPU takes. A GPU waits for the host every step, so
there the inputs are built with numpy and sent in one copy (``fast_inputs.py``), and a
decode step replays a CUDA graph (``cuda_graph.py``): the same step, faster.

Set-up picks the device (CUDA when present) and dtype (the checkpoint's on a GPU,
float32 on a CPU), loads the weights, measures the largest step's activations (GPU),
sizes the KV cache from what is left, and captures CUDA graphs unless ``enforce_eager``.
Under tensor parallelism every process runs one ``ModelRunner`` holding its ``rank``'s
shard; only rank 0 gets logits and samples (``tp_runner.py``).
"""

import contextlib
import gc
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch

from nanovllm.engine.cuda_graph import DecodeGraphs
from nanovllm.engine.fast_inputs import FastInputs
from nanovllm.engine.kv_cache import allocate_kv_cache, choose_num_blocks, release_kv_cache
from nanovllm.engine.parallel import fewest_across_group
from nanovllm.engine.scoring import prompt_scorer
from nanovllm.engine.torch_compile import compile_small_ops
from nanovllm.kernels.gemv import use_gemv
from nanovllm.layers.attention import StepInputs
from nanovllm.layers.fp8 import FP8
from nanovllm.layers.linear import Shard
from nanovllm.layers.sampler import Sampler, SamplingValues
from nanovllm.models.model_config import ModelConfig
from nanovllm.models.qwen3 import Qwen3ForCausalLM
from nanovllm.utils.loader import load_model

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def resolve_dtype(name: str, model_config: ModelConfig, device: torch.device) -> torch.dtype:
    if name != "auto":
        return DTYPES[name]
    if device.type == "cpu":  # most CPUs have no fast bf16/fp16 matrix products
        return torch.float32
    return DTYPES.get(model_config.torch_dtype, torch.bfloat16)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def prepare(batch, block_size: int) -> StepInputs:
    """The step's inputs. Sequence i computes its tokens [start, start + n), where start is
    its ``num_computed_tokens``; each token's K/V goes to the slot its block table gives."""
    input_ids, positions, slots, sample_rows, cu_seqlens_q, context_lens = [], [], [], [], [0], []
    for seq, n, sample in zip(batch.seqs, batch.num_new_tokens, batch.do_sample, strict=True):
        start = seq.num_computed_tokens
        for pos in range(start, start + n):
            input_ids.append(seq.token_ids[pos])
            positions.append(pos)
            slots.append(seq.block_table[pos // block_size] * block_size + pos % block_size)
        cu_seqlens_q.append(cu_seqlens_q[-1] + n)
        context_lens.append(start + n)  # what its attention reads: the cache after this step
        if sample:  # the chunk ends at the sequence's last token: its row gives the next one
            sample_rows.append(cu_seqlens_q[-1] - 1)
    width = max(1, *(len(seq.block_table) for seq in batch.seqs))
    block_tables = [seq.block_table + [-1] * (width - len(seq.block_table)) for seq in batch.seqs]
    arrays = (input_ids, positions, slots, cu_seqlens_q, context_lens, block_tables, sample_rows)
    return StepInputs(*(np.array(a, dtype=np.int32) for a in arrays),
                      max_query_len=max(batch.num_new_tokens))


class ModelRunner:
    def __init__(self, config, model_config: ModelConfig, folder, rank: int = 0):
        self.config = config
        self.rank = rank
        self.block_size = config.block_size
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and config.block_size < 16:
            raise ValueError(f"block_size={config.block_size} is invalid on a GPU: the GPU "
                             f"kernels are tested and measured at block_size >= 16 only")
        self.dtype = resolve_dtype(config.dtype, model_config, self.device)
        self.cache_dtype = FP8 if config.kv_cache_dtype == "fp8" else self.dtype
        with default_dtype(self.dtype), torch.device(self.device):
            self.model = Qwen3ForCausalLM(model_config, Shard(rank, config.tensor_parallel_size))
        self.bytes_loaded = load_model(self.model, folder)
        self.model.eval()
        self.sampler = Sampler()
        self.random_keys = np.random.default_rng(config.seed)  # for requests without a seed
        on_gpu = self.device.type == "cuda"
        self.fast = FastInputs(self.block_size) if on_gpu else None
        if on_gpu and config.enable_torch_compile:
            compile_small_ops(self.model)
        # Triton's launch costs the host more than cuBLAS's, a price a CUDA graph pays once
        if on_gpu and config.gemv_max_rows and not config.enforce_eager:
            use_gemv(self.model, config.gemv_max_rows)
        # peak memory of the largest step, kept free of KV cache
        self.activation_bytes = (self.measure_activation_bytes()
                                 if on_gpu and config.num_kvcache_blocks == 0 else 0)
        self.num_blocks = choose_num_blocks(config, model_config, self.cache_dtype, self.device,
                                            self.activation_bytes)
        if config.tensor_parallel_size > 1:  # one block table indexes every rank's cache
            self.num_blocks = fewest_across_group(self.num_blocks, self.device)
        self.kv_cache = allocate_kv_cache(self.model, model_config, self.num_blocks,
                                          self.block_size, self.cache_dtype, self.device)
        self.graphs = self.capture_graphs() if on_gpu and not config.enforce_eager else None

    def capture_graphs(self) -> DecodeGraphs | None:
        """CUDA graphs for decode steps; None, and eager steps, if capture fails on any rank."""
        if self.config.tensor_parallel_size > 1:
            def agree(ok: bool) -> bool:
                return fewest_across_group(int(ok), self.device) == 1
        else:
            agree = bool
        try:
            return DecodeGraphs.capture(self, self.config.max_num_seqs, agree)
        except RuntimeError as error:
            warnings.warn(f"CUDA graph capture failed, running eagerly: {error}", stacklevel=2)
            return None

    def close(self) -> None:
        """Give the memory back now (weights, KV cache, graphs), not whenever the garbage
        collector gets to it, so that another engine can start in this process."""
        self.graphs = self.model = self.kv_cache = None
        if torch.cuda.is_initialized():
            gc.collect()  # and what only the cycle collector would free
            torch.cuda.empty_cache()

    def check_usable(self) -> None:
        if self.model is None:
            raise RuntimeError("the engine was closed; this LLM cannot run any more, "
                               "make a new one")

    def run(self, batch) -> list[int]:
        """One step: one sampled token id per sequence whose do_sample is set, in batch order
        (and the prompt log-probabilities of the sequences that ask, ``scoring.py``)."""
        self.check_usable()
        inputs, sampling = self.step_inputs(batch)
        return self.run_inputs(inputs, sampling,
                               prompt_scorer(batch, inputs.cu_seqlens_q, self.model))

    def step_inputs(self, batch) -> tuple[StepInputs, SamplingValues | None]:
        """The batch as host arrays, and its sampled rows' parameters."""
        inputs = self.fast.prepare(batch) if self.fast else prepare(batch, self.block_size)
        sampled = [seq for seq, do in zip(batch.seqs, batch.do_sample, strict=True) if do]
        sampling = SamplingValues.from_params([seq.sampling_params for seq in sampled],
                                              [seq.num_completion_tokens for seq in sampled],
                                              self.random_keys) if sampled else None
        return inputs, sampling

    def run_inputs(self, inputs: StepInputs, sampling: SamplingValues | None,
                   score: Callable[[torch.Tensor], None] | None = None) -> list[int]:
        """The step from its host arrays. A tensor-parallel worker gets only these, and no
        ``sampling``: rank 0 gathers the logits and samples."""
        tokens = self.sample(inputs, sampling, score=score)
        return [] if tokens is None else tokens.tolist()

    @torch.inference_mode()
    def sample(self, inputs: StepInputs, sampling: SamplingValues | None,
               fill: Callable[[torch.Tensor], None] | None = None,
               score: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor | None:
        """The step's sampled ids on the device, not waited for (None where nothing is
        sampled here). ``fill(input_ids)`` may write input ids on the device before the model
        runs: the overlapped engine's tokens that are still on the GPU (``overlap.py``).
        ``score(hidden)`` gets every row's output (``scoring.py``)."""
        self.check_usable()
        if score is None and self.graphs is not None and self.graphs.covers(inputs):
            return self.graphs.replay(inputs, sampling, fill)
        on_device = (self.fast.to_device(inputs, self.device) if self.fast
                     else inputs.to(self.device))
        if fill is not None:
            fill(on_device.input_ids)
        hidden = self.model(on_device)
        if score is not None:
            score(hidden)
        num_sampled = len(inputs.sample_rows)
        if num_sampled == 0:  # only middle chunks of long prompts: their K/V was the point
            return None
        if num_sampled < hidden.shape[0]:  # a decode-only step samples every row
            hidden = hidden[on_device.sample_rows]
        logits = self.model.compute_logits(hidden)
        if logits is None:  # a tensor-parallel worker: rank 0 has the logits and samples
            return None
        return self.sampler(logits, sampling.to(self.device))

    @torch.inference_mode()
    def measure_activation_bytes(self) -> int:
        """Peak memory of the largest step (beyond the weights), measured on a throwaway cache.

        The warm-up packs max_num_batched_tokens tokens into as few sequences as
        max_model_len allows, then samples max_num_seqs rows with top-p on, whose
        full-vocabulary sort is the sampler's most memory-hungry path.
        """
        config, device = self.config, self.device
        tokens = min(config.max_num_batched_tokens, config.max_num_seqs * config.max_model_len)
        lengths = [min(config.max_model_len, tokens - i)
                   for i in range(0, tokens, config.max_model_len)]
        seqs, first_block = [], 0
        for n in lengths:
            count = -(-n // self.block_size)
            seqs.append(SimpleNamespace(token_ids=[0] * n, num_computed_tokens=0,
                                        block_table=list(range(first_block, first_block + count))))
            first_block += count
        warmup = SimpleNamespace(seqs=seqs, num_new_tokens=lengths, do_sample=[True] * len(seqs))
        scratch = allocate_kv_cache(self.model, self.model.config, first_block, self.block_size,
                                    self.cache_dtype, device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        hidden = self.model(prepare(warmup, self.block_size).to(device))
        rows = torch.arange(config.max_num_seqs, device=device) % tokens
        logits = self.model.compute_logits(hidden[rows])
        ones = torch.ones(config.max_num_seqs, device=device)
        everyone = SamplingValues(ones, ones.long(), ones * 0.9, ones.long(), truncates=True)
        if logits is not None:  # rank 0 only under tensor parallelism
            self.sampler(logits, everyone)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - baseline
        del scratch, hidden, logits
        release_kv_cache(self.model)  # the layers' views would keep the scratch cache alive
        torch.cuda.empty_cache()
        return peak
