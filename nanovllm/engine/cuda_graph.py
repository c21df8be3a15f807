"""CUDA graphs for decode steps: record the kernel launches once, replay them every step.

A decode step of a small model is short on the GPU but long on the CPU: hundreds of
kernel launches, each costing microseconds of Python and driver time. A CUDA graph
records the launches of one step once; replaying it launches them all at once. The
price is that a graph is frozen: its tensors' addresses and shapes never change. So we
capture one graph per batch size (1, 2, 4, 8, then steps of 16), all reading from the
same static input buffers, copy each step's inputs into those buffers, round the batch
up to the next captured size, and replay. Padding rows get slot -1 (nothing stored) and
context length 0; what they compute is discarded.

Only decode-only batches use graphs: their shapes depend on the batch size alone.
Prefill shapes vary with prompt lengths, and a prefill step is long enough on the GPU
that launch overhead matters little.
"""

import torch

from nanovllm.layers.attention import AttentionMetadata


def captured_sizes(max_batch: int) -> list[int]:
    sizes = [s for s in (1, 2, 4, 8) if s < max_batch] + list(range(16, max_batch, 16))
    return sizes + [max_batch]


class DecodeGraphs:
    def __init__(self, runner, max_batch: int):
        config, device = runner.config, runner.device
        max_blocks = -(-config.max_model_len // config.block_size)
        self.model = runner.model
        self.sizes = captured_sizes(max_batch)
        self.input_ids = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.slot_mapping = torch.full((max_batch,), -1, dtype=torch.int32, device=device)
        self.context_lens = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(max_batch, max_blocks, dtype=torch.int32, device=device)
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        self.hidden = torch.zeros(max_batch, runner.model.config.hidden_size,
                                  dtype=runner.dtype, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def metadata(self, size: int) -> AttentionMetadata:
        return AttentionMetadata(self.slot_mapping[:size], self.cu_seqlens_q[:size + 1],
                                 self.context_lens[:size], self.block_tables[:size],
                                 max_query_len=1, decode_only=True)

    def run_model(self, size: int) -> None:
        self.hidden[:size] = self.model(self.input_ids[:size], self.positions[:size],
                                        self.metadata(size))

    @classmethod
    @torch.inference_mode()
    def capture(cls, runner, max_batch: int) -> "DecodeGraphs":
        graphs = cls(runner, max_batch)
        pool = None
        for size in reversed(graphs.sizes):  # largest first, so the smaller ones share its memory
            graphs.run_model(size)  # warm-up: compiles the Triton kernels outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                graphs.run_model(size)
            pool = graph.pool() if pool is None else pool
            graphs.graphs[size] = graph
        torch.cuda.synchronize()
        return graphs

    def covers(self, inputs) -> bool:
        meta = inputs.meta
        return (meta.decode_only and len(inputs.input_ids) <= self.sizes[-1]
                and meta.block_tables.shape[1] <= self.block_tables.shape[1])

    def replay(self, inputs) -> torch.Tensor:
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
        self.graphs[size].replay()
        return self.hidden[:n]
