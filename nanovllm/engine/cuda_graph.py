"""CUDA graphs for decode steps: record the kernel launches once, replay them every step.

A decode step of a small model is short on the GPU but long on the CPU: hundreds of
kernel launches, each costing microseconds of Python and driver time. A CUDA graph
records the launches of one step once; replaying it launches them all at once. A graph
is frozen (its tensors' addresses and shapes never change), so one is captured per batch
size (1, 2, 4, 8, then steps of 16), all reading the same static input buffers: a step
fills them, rounds the batch up to the next captured size and replays. Padding rows get
slot -1 (nothing stored) and context length 0; what they compute is discarded. The
buffers are views of one device tensor with a pinned twin on the host, filled with numpy
and sent in one copy (``StaticInputs``).

A graph holds the model, its LM head and the sampler (its random numbers come from
per-row keys, an input like any other). A step whose requests use top-k or top-p replays
a second graph without the sampler, and samples eagerly from its logits. Under tensor
parallelism every rank captures the same graphs, with the same collectives in the same
order, and every rank stops at the same size if one fails. Only decode-only batches use
graphs: their shapes depend on the batch size alone; a prefill step is long anyway.
"""

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch

from nanovllm.layers.attention import StepInputs
from nanovllm.layers.sampler import SamplingValues


def captured_sizes(max_batch: int) -> list[int]:
    sizes = [s for s in (1, 2, 4, 8) if s < max_batch] + list(range(16, max_batch, 16))
    return sizes + [max_batch]


class StaticInputs:
    """The graphs' inputs as named buffers: ``on_device.input_ids`` and the rest are views of
    one device tensor, ``on_host.input_ids`` and the rest numpy views of one pinned twin.
    Block tables come last, so a step copies only the rows its batch uses."""

    LAYOUT = {"input_ids": np.int32, "positions": np.int32, "slot_mapping": np.int32,
              "context_lens": np.int32, "scales": np.float32, "keys": np.int64,
              "block_tables": np.int32}
    ALIGN = 64  # bytes

    def __init__(self, max_batch: int, max_blocks: int, device: torch.device):
        shapes = dict.fromkeys(self.LAYOUT, (max_batch,)) | {"block_tables": (max_batch,
                                                                              max_blocks)}
        spans, total = {}, 0
        for name, dtype in self.LAYOUT.items():
            nbytes = int(np.prod(shapes[name])) * np.dtype(dtype).itemsize
            spans[name] = (total, total + nbytes)
            total += -(-nbytes // self.ALIGN) * self.ALIGN
        self.device_bytes = torch.zeros(total, dtype=torch.uint8, device=device)
        self.host_bytes = torch.zeros(total, dtype=torch.uint8, pin_memory=True)
        self.on_device, self.on_host = SimpleNamespace(), SimpleNamespace()
        for name, dtype in self.LAYOUT.items():
            start, end = spans[name]
            torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            setattr(self.on_device, name, self.device_bytes[start:end].view(torch_dtype).view(
                shapes[name]))
            setattr(self.on_host, name, self.host_bytes[start:end].numpy().view(dtype).reshape(
                shapes[name]))
        self.tables_start, self.row_bytes = spans["block_tables"][0], max_blocks * 4
        self.on_host.slot_mapping[:] = -1  # a padding row stores nothing, even at capture
        self.copied: torch.cuda.Event | None = None
        self.send(max_batch)

    def send(self, rows: int) -> None:
        """Copy the host twin to the device: every field, and block tables' first ``rows``."""
        end = self.tables_start + rows * self.row_bytes
        self.device_bytes[:end].copy_(self.host_bytes[:end], non_blocking=True)
        self.copied = torch.cuda.Event()
        self.copied.record()

    def host(self) -> SimpleNamespace:
        """The host twin, once the last copy from it is done (every step reads its tokens)."""
        if self.copied is not None:
            self.copied.synchronize()
        return self.on_host


def capture_all(sizes: list[int], capture_one: Callable[[int], None],
                agree: Callable[[bool], bool]) -> None:
    """``capture_one(size)`` for every size, largest first (the smaller ones share its
    memory). ``agree(ok)`` is True if every rank's capture of that size succeeded, so all
    ranks stop at the same size (one still capturing would wait for one that gave up)."""
    for size in reversed(sizes):
        try:
            capture_one(size)
            failure = None
        except RuntimeError as error:  # an unusual driver or allocator setting
            failure = error
        if not agree(failure is None):
            raise failure or RuntimeError(f"capture failed on another tensor-parallel rank "
                                          f"at batch size {size}")


class DecodeGraphs:
    def __init__(self, runner, max_batch: int):
        config, device = runner.config, runner.device
        self.model, self.sampler = runner.model, runner.sampler
        self.sizes = captured_sizes(max_batch)
        self.static = StaticInputs(max_batch, -(-config.max_model_len // config.block_size),
                                   device)
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        self.pool = None  # the memory pool every graph shares
        self.graphs, self.unsampled = {}, {}  # size -> graph with the sampler, and without it
        self.logits, self.tokens = {}, {}  # size -> output tensor, rewritten by each replay

    def inputs(self, size: int) -> StepInputs:
        static = self.static.on_device
        return StepInputs(static.input_ids[:size], static.positions[:size],
                          static.slot_mapping[:size], self.cu_seqlens_q[:size + 1],
                          static.context_lens[:size], static.block_tables[:size],
                          sample_rows=None, max_query_len=1)

    def record(self, function: Callable[[], torch.Tensor | None]) -> tuple:
        """A warm-up call (it compiles the Triton kernels outside the capture), then the graph."""
        function()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = function()
        self.pool = self.pool or graph.pool()
        return graph, output

    def capture_size(self, size: int) -> None:
        def forward():
            return self.model.compute_logits(self.model(self.inputs(size)))

        self.unsampled[size], self.logits[size] = self.record(forward)
        if self.logits[size] is not None:  # None on a tensor-parallel worker: rank 0 samples
            static = self.static.on_device
            values = SamplingValues(static.scales[:size], None, None, static.keys[:size],
                                    truncates=False)
            self.graphs[size], self.tokens[size] = self.record(
                lambda: self.sampler(forward(), values))

    @classmethod
    @torch.inference_mode()
    def capture(cls, runner, max_batch: int, agree: Callable[[bool], bool]) -> "DecodeGraphs":
        graphs = cls(runner, max_batch)
        capture_all(graphs.sizes, graphs.capture_size, agree)
        torch.cuda.synchronize()
        return graphs

    def covers(self, inputs: StepInputs) -> bool:
        """A step of one new token per sequence, each sampled, that fits the buffers. (A
        one-token chunk of a longer prompt has one new token too, but samples nothing.)"""
        n = len(inputs.input_ids)
        return (inputs.decode_only and len(inputs.sample_rows) == n <= self.sizes[-1]
                and inputs.block_tables.shape[1] <= self.static.on_device.block_tables.shape[1])

    def replay(self, inputs: StepInputs, sampling: SamplingValues | None,
               fill: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor | None:
        """The sampled token ids, a view of this size's output that the next replay rewrites
        (None on a tensor-parallel worker). ``fill`` as in ``ModelRunner.sample``."""
        n = len(inputs.input_ids)
        size = next(s for s in self.sizes if s >= n)
        host = self.static.host()
        host.input_ids[:n] = inputs.input_ids
        host.input_ids[n:size] = 0  # a valid id: an earlier step may have left -1 here
        host.positions[:n] = inputs.positions
        host.slot_mapping[:n] = inputs.slot_mapping
        host.slot_mapping[n:size] = -1
        host.context_lens[:n] = inputs.context_lens
        host.context_lens[n:size] = 0
        host.block_tables[:n, :inputs.block_tables.shape[1]] = inputs.block_tables
        if sampling is not None:
            host.scales[:n], host.keys[:n] = sampling.scales, sampling.keys
        self.static.send(n)  # padding rows' block tables are never read (context length 0)
        if fill is not None:
            fill(self.static.on_device.input_ids[:n])
        if sampling is None or sampling.truncates:
            self.unsampled[size].replay()
            if sampling is None:  # a tensor-parallel worker
                return None
            logits = self.logits[size][:n]  # top-k or top-p: the sampler's sort runs eagerly
            return self.sampler(logits, sampling.to(logits.device))
        self.graphs[size].replay()
        return self.tokens[size][:n]
