"""CUDA graphs for decode steps: record the kernel launches once, replay them every step.

A decode step of a small model is short on the GPU but long on the CPU: hundreds of
kernel launches, each costing microseconds of Python and driver time. A CUDA graph
records the launches of one step once; replaying it launches them all at once. The
price is that a graph is frozen: its tensors' addresses and shapes never change. So we
capture one graph per batch size (1, 2, 4, 8, then steps of 16), all reading from the
same static input buffers, copy each step's inputs into those buffers, round the batch
up to the next captured size, and replay. Padding rows get slot -1 (nothing stored) and
context length 0; what they compute is discarded.

Filling the buffers must be cheap too, or the host's share of the step comes back: the
static inputs are views of *one* device buffer with a page-locked twin on the host
(``StaticInputs``). The host writes the step's values into the twin with numpy and the
whole of it travels in one copy, so a step costs two calls into torch: the copy and
the replay.

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

import numpy as np
import torch

from nanovllm.engine.model_inputs import InputArrays
from nanovllm.layers.attention import AttentionMetadata
from nanovllm.layers.sampler import SamplingValues


def captured_sizes(max_batch: int) -> list[int]:
    sizes = [s for s in (1, 2, 4, 8) if s < max_batch] + list(range(16, max_batch, 16))
    return sizes + [max_batch]


class StaticInputs:
    """The graphs' inputs: views of one device buffer, filled from a pinned host twin.

    Block tables come last, so a step copies only the rows its batch uses.
    """

    FIELDS = {"input_ids": np.int32, "positions": np.int32, "slot_mapping": np.int32,
              "context_lens": np.int32, "scales": np.float32, "keys": np.int64,
              "block_tables": np.int32}
    ALIGN = 64  # bytes

    def __init__(self, max_batch: int, max_blocks: int, device: torch.device):
        shapes = dict.fromkeys(self.FIELDS, (max_batch,)) | {"block_tables": (max_batch,
                                                                              max_blocks)}
        self.offsets, total = {}, 0
        for name, dtype in self.FIELDS.items():
            self.offsets[name] = total
            nbytes = int(np.prod(shapes[name])) * np.dtype(dtype).itemsize
            total += -(-nbytes // self.ALIGN) * self.ALIGN
        self.row_bytes = max_blocks * np.dtype(np.int32).itemsize
        self.device_bytes = torch.zeros(total, dtype=torch.uint8, device=device)
        self.host_bytes = torch.zeros(total, dtype=torch.uint8, pin_memory=True)
        self.on_device, self.on_host = {}, {}
        for name, dtype in self.FIELDS.items():
            start = self.offsets[name]
            end = start + int(np.prod(shapes[name])) * np.dtype(dtype).itemsize
            torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            self.on_device[name] = self.device_bytes[start:end].view(torch_dtype).view(
                shapes[name])
            self.on_host[name] = self.host_bytes[start:end].numpy().view(dtype).reshape(
                shapes[name])
        self.on_host["slot_mapping"][:] = -1  # a padding row stores nothing, even at capture
        self.copied: torch.cuda.Event | None = None
        self.send(max_batch)

    def send(self, rows: int) -> None:
        """Copy the host twin to the device: every field, and block tables' first ``rows``."""
        end = self.offsets["block_tables"] + rows * self.row_bytes
        self.device_bytes[:end].copy_(self.host_bytes[:end], non_blocking=True)
        self.copied = torch.cuda.Event()
        self.copied.record()

    def host(self) -> dict[str, np.ndarray]:
        """The host twin's fields, once the last copy from it is done (it is, in practice:
        every step ends by reading its tokens back)."""
        if self.copied is not None:
            self.copied.synchronize()
        return self.on_host


class DecodeGraphs:
    def __init__(self, runner, max_batch: int):
        config, device = runner.config, runner.device
        max_blocks = -(-config.max_model_len // config.block_size)
        self.model, self.sampler = runner.model, runner.sampler
        self.sizes = captured_sizes(max_batch)
        self.static = StaticInputs(max_batch, max_blocks, device)
        fields = self.static.on_device
        self.input_ids, self.positions = fields["input_ids"], fields["positions"]
        self.slot_mapping, self.context_lens = fields["slot_mapping"], fields["context_lens"]
        self.block_tables = fields["block_tables"]
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        # Sampling parameters of each row (a padding row samples too; its token is dropped).
        self.scales, self.keys = fields["scales"], fields["keys"]
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
        sampling = SamplingValues(self.scales[:size], top_ks=None, top_ps=None,
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

    def covers(self, arrays: InputArrays) -> bool:
        """A step of one new token per sequence, each sampled, that fits the buffers. (A
        one-token chunk of a longer prompt has one new token too, but samples nothing.)"""
        n = len(arrays.input_ids)
        return (arrays.decode_only and len(arrays.sample_rows) == n <= self.sizes[-1]
                and arrays.block_tables.shape[1] <= self.block_tables.shape[1])

    def replay(self, arrays: InputArrays, sampling: SamplingValues | None) -> tuple:
        """Sampled token ids [n] and logits [n, vocab] (None, None on a worker)."""
        n = len(arrays.input_ids)
        size = next(s for s in self.sizes if s >= n)
        host = self.static.host()
        host["input_ids"][:n] = arrays.input_ids
        host["positions"][:n] = arrays.positions
        host["slot_mapping"][:n] = arrays.slot_mapping
        host["slot_mapping"][n:size] = -1
        host["context_lens"][:n] = arrays.context_lens
        host["context_lens"][n:size] = 0
        host["block_tables"][:n, :arrays.block_tables.shape[1]] = arrays.block_tables
        if sampling is not None:
            host["scales"][:n] = sampling.scales
            host["keys"][:n] = sampling.keys
        self.static.send(n)  # padding rows' block tables are never read (context length 0)
        self.graphs[size].replay()
        tokens, logits = self.outputs[size]
        return (None, None) if tokens is None else (tokens[:n], logits[:n])
