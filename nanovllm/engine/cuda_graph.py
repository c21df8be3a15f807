"""CUDA graphs for decode steps: record the kernel launches once, replay them every step.

A decode step of a small model is short on the GPU but long on the CPU: hundreds of
kernel launches, each costing microseconds of Python and driver time. A CUDA graph
records the launches of one step once; replaying it launches them all at once. The
price is that a graph is frozen: its tensors' addresses and shapes never change. So we
capture one graph per batch size (1, 2, 4, 8, then steps of 16), all reading from the
same static input buffers, copy each step's inputs into those buffers, round the batch
up to the next captured size, and replay. Padding rows get slot -1 (nothing stored) and
context length 0; what they compute is discarded.

A graph holds the whole step after the inputs are prepared: the model, the LM head
and the sampler (whose random numbers come from per-row keys, an input like any
other: see ``kernels/sample.py``). What comes back is the sampled token ids, and the
logits for the rare step whose requests use top-k or top-p, which the runner then
samples again outside the graph. Under tensor parallelism every rank captures the same
graphs, with the same collectives in the same order; only rank 0's holds a sampler.

Only decode-only batches use graphs: their shapes depend on the batch size alone.
Prefill shapes vary with prompt lengths, and a prefill step is long enough on the GPU
that launch overhead matters little.
"""

import torch

from nanovllm.layers.attention import AttentionMetadata
from nanovllm.layers.sampler import SamplingTensors


def captured_sizes(max_batch: int) -> list[int]:
    sizes = [s for s in (1, 2, 4, 8) if s < max_batch] + list(range(16, max_batch, 16))
    return sizes + [max_batch]


class DecodeGraphs:
    def __init__(self, runner, max_batch: int):
        config, device = runner.config, runner.device
        max_blocks = -(-config.max_model_len // config.block_size)
        self.model, self.sampler = runner.model, runner.sampler
        self.sizes = captured_sizes(max_batch)
        self.input_ids = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.slot_mapping = torch.full((max_batch,), -1, dtype=torch.int32, device=device)
        self.context_lens = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(max_batch, max_blocks, dtype=torch.int32, device=device)
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        # Sampling parameters of each row (a padding row samples too; its token is dropped).
        self.scales = torch.zeros(max_batch, dtype=torch.float32, device=device)
        self.keys = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, tuple] = {}  # size -> (tokens, logits), rewritten by each replay

    def metadata(self, size: int) -> AttentionMetadata:
        return AttentionMetadata(self.slot_mapping[:size], self.cu_seqlens_q[:size + 1],
                                 self.context_lens[:size], self.block_tables[:size],
                                 max_query_len=1, decode_only=True)

    def run_step(self, size: int) -> tuple:
        hidden = self.model(self.input_ids[:size], self.positions[:size], self.metadata(size))
        logits = self.model.compute_logits(hidden)
        if logits is None:  # a tensor-parallel worker: rank 0 samples
            return None, None
        sampling = SamplingTensors(self.scales[:size], top_ks=None, top_ps=None,
                                   keys=self.keys[:size], truncates=False)
        return self.sampler(logits, sampling), logits

    @classmethod
    @torch.inference_mode()
    def capture(cls, runner, max_batch: int) -> "DecodeGraphs":
        graphs = cls(runner, max_batch)
        pool = None
        for size in reversed(graphs.sizes):  # largest first, so the smaller ones share its memory
            graphs.run_step(size)  # warm-up: compiles the Triton kernels outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                graphs.outputs[size] = graphs.run_step(size)
            pool = graph.pool() if pool is None else pool
            graphs.graphs[size] = graph
        torch.cuda.synchronize()
        return graphs

    def covers(self, inputs) -> bool:
        meta = inputs.meta
        return (meta.decode_only and len(inputs.input_ids) <= self.sizes[-1]
                and meta.block_tables.shape[1] <= self.block_tables.shape[1])

    def replay(self, inputs, sampling: SamplingTensors | None) -> tuple:
        """Sampled token ids [n] and logits [n, vocab] (None, None on a worker)."""
        n = len(inputs.input_ids)
        size = next(s for s in self.sizes if s >= n)
        meta = inputs.meta
        self.input_ids[:n] = inputs.input_ids
        self.positions[:n] = inputs.positions
        self.slot_mapping[:n] = meta.slot_mapping
        self.slot_mapping[n:size] = -1
        self.context_lens[:n] = meta.context_lens
        self.context_lens[n:size] = 0
        self.block_tables[:n, :meta.block_tables.shape[1]] = meta.block_tables
        if sampling is not None:
            self.scales[:n] = sampling.scales
            self.keys[:n] = sampling.keys
        self.graphs[size].replay()
        tokens, logits = self.outputs[size]
        return (None, None) if tokens is None else (tokens[:n], logits[:n])
