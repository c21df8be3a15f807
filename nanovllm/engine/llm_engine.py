"""The engine loop: requests in, one scheduled-and-computed step at a time, tokens out.

Each ``step()`` is the whole cycle the book keeps returning to:

    batch   = scheduler.schedule()          # control plane: who computes what
    tokens  = model_runner.run(batch)       # data plane: compute, sample
    done    = scheduler.postprocess(batch, tokens)   # control plane: bookkeeping

The engine also owns the tokenizer and checks every request before the scheduler sees
it, so that a bad request is refused with a clear error and nothing else is disturbed.
Likewise a step that raises ends only the requests it was computing, and ``abort`` ends
any request at once: either way their blocks go back to the pool, and blocks published
for a step that never completed leave the prefix cache.
"""

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from nanovllm.config import Config
from nanovllm.engine.detokenizer import IncrementalDetokenizer
from nanovllm.engine.model_runner import ModelRunner
from nanovllm.engine.scheduler import Scheduler
from nanovllm.engine.sequence import Sequence
from nanovllm.engine.tp_runner import TensorParallelRunner
from nanovllm.engine.trace import TraceRecorder
from nanovllm.models.model_config import ModelConfig
from nanovllm.sampling_params import SamplingParams
from nanovllm.utils.tokenizer import Tokenizer

BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "data"
logger = logging.getLogger("nanovllm")


def resolve_model_folder(model: str) -> Path:
    """``model`` itself, or for "" the model bundled in nanovllm/data/."""
    if model:
        return Path(model).expanduser()
    candidates = [BUNDLED_MODELS] + sorted(p for p in BUNDLED_MODELS.glob("*") if p.is_dir())
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(f"no bundled model in {BUNDLED_MODELS}; pass a model folder "
                            f"(config.json, *.safetensors, tokenizer.json)")


@dataclass
class StepOutput:
    sampled: list[tuple[Sequence, int]]  # each sequence that got a token, and the token
    finished: list[Sequence]  # ended in this step (reached a stop, or its step failed)
    num_prompt_tokens: int  # tokens computed this step that lie in prompts (incl. recompute)
    num_generated_tokens: int


class LLMEngine:
    overlaps = False  # the overlapped engine (overlap.py) says True

    def __init__(self, model: str = "", **config_fields):
        config = Config(model=model, **config_fields)
        if config.overlap_steps != "auto" and config.overlap_steps is not self.overlaps:
            raise ValueError(f"overlap_steps={config.overlap_steps} is invalid for "
                             f"{type(self).__name__}, which "
                             f"{'overlaps' if self.overlaps else 'does not overlap'} its steps: "
                             f"make_engine (engine/overlap.py) or LLM picks the engine")
        # the config says what this engine does ("auto" resolved), for records and readers
        config = dataclasses.replace(config, overlap_steps=self.overlaps)
        folder = resolve_model_folder(config.model)
        self.model_config = ModelConfig.from_folder(folder)
        self.tokenizer = Tokenizer(folder)
        config = dataclasses.replace(config, max_model_len=min(
            config.max_model_len, self.model_config.max_position_embeddings))
        runner_class = TensorParallelRunner if config.tensor_parallel_size > 1 else ModelRunner
        self.model_runner = runner_class(config, self.model_config, folder)
        self.config = dataclasses.replace(config,
                                          num_kvcache_blocks=self.model_runner.num_blocks)
        self.eos_token_id = self.find_eos_token_id()
        self.scheduler = self.new_scheduler(self.config)
        self.num_preemptions = 0  # sequences sent back to recompute, over the engine's life
        self.trace: TraceRecorder | None = None

    def new_scheduler(self, config: Config) -> Scheduler:
        """A scheduler with empty queues and a cold prefix cache."""
        return Scheduler(config, self.eos_token_id)

    def start_trace(self) -> TraceRecorder:
        """Record every following step (batch, sampled tokens, block state) as a trace."""
        self.trace = TraceRecorder(self.scheduler)
        return self.trace

    def find_eos_token_id(self) -> int:
        if self.model_config.eos_token_id is not None:
            return self.model_config.eos_token_id
        eos = self.tokenizer.eos_token and self.tokenizer.token_to_id(self.tokenizer.eos_token)
        return eos if eos is not None else -1  # -1: no end-of-sequence token; never sampled

    def tokenize(self, prompt) -> list[int]:
        """Token ids of a prompt given as text or as ids; ValueError for anything unusable."""
        if hasattr(prompt, "tolist") and not isinstance(prompt, str):  # numpy, torch
            prompt = prompt.tolist()
        if isinstance(prompt, str):
            token_ids = self.encode_text(prompt)
        elif isinstance(prompt, (list, tuple)) and all(
                isinstance(t, Integral) and not isinstance(t, bool) for t in prompt):
            token_ids = [int(t) for t in prompt]
        else:
            raise ValueError(f"prompt must be a string or a list of token ids, "
                             f"got {type(prompt).__name__}")
        vocab_size = self.model_config.vocab_size
        for position, token_id in enumerate(token_ids):
            if not 0 <= token_id < vocab_size:
                raise ValueError(f"prompt token id {token_id} at position {position} is outside "
                                 f"the vocabulary [0, {vocab_size})")
        return token_ids

    def encode_text(self, text: str) -> list[int]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800"
            raise ValueError(f"prompt is not valid Unicode text: {error.reason} at position "
                             f"{error.start}") from None
        try:
            return self.tokenizer.encode(text)
        except Exception as error:  # the tokenizer library's own refusal, whatever its type
            raise ValueError(f"prompt could not be tokenized: {error}") from None

    def add_request(self, prompt, params: SamplingParams, detokenize: bool = False) -> Sequence:
        """Queue one request. ``detokenize``: decode its text as it grows (``stream`` shows
        it); requests with stop strings always are, since the engine looks for them in it."""
        if not isinstance(params, SamplingParams):
            raise ValueError(f"sampling params must be a SamplingParams, "
                             f"got {type(params).__name__}")
        if params.prompt_logprobs and (type(self) is not LLMEngine
                                       or self.config.tensor_parallel_size > 1):
            raise ValueError("prompt_logprobs=True needs the plain engine in one process: make "
                             "the LLM with overlap_steps=False and tensor_parallel_size=1")
        seq = Sequence(self.tokenize(prompt), params)
        if params.stop or detokenize:
            seq.detokenizer = IncrementalDetokenizer(self.tokenizer, seq.num_prompt_tokens,
                                                     params.stop,
                                                     params.include_stop_str_in_output)
        self.scheduler.add(seq)  # refuses (ValueError) what can never run, e.g. too long
        return seq

    def step(self) -> StepOutput:
        batch = self.scheduler.schedule()
        if not batch.seqs:
            raise RuntimeError("the scheduler found nothing to run although requests remain")
        self.num_preemptions += len(batch.preempted_seq_ids)
        try:
            token_ids = self.model_runner.run(batch)
        except Exception as error:
            return self.fail_step(batch, error)
        sampled_seqs = [s for s, do in zip(batch.seqs, batch.do_sample, strict=True) if do]
        num_prompt_tokens = sum(n for n, prefill in zip(batch.num_new_tokens, batch.is_prefill,
                                                        strict=True) if prefill)
        finished = self.scheduler.postprocess(batch, token_ids)
        self.find_stop_strings(sampled_seqs, finished)
        if self.trace is not None:
            self.trace.record_step(batch, token_ids)
        return StepOutput(sampled=list(zip(sampled_seqs, token_ids, strict=True)),
                          finished=finished, num_prompt_tokens=num_prompt_tokens,
                          num_generated_tokens=len(token_ids))

    def fail_step(self, batch, error: Exception) -> StepOutput:
        """A step that raised ends the requests it was computing, with the error; the requests
        it did not touch are unaffected and go on."""
        logger.error("a step of %d request(s) failed; they end with finish_reason='error'",
                     len(batch.seqs), exc_info=error)
        for seq in batch.seqs:
            seq.error = f"{type(error).__name__}: {error}"
            self.scheduler.finish(seq, "error")
        return StepOutput(sampled=[], finished=list(batch.seqs), num_prompt_tokens=0,
                          num_generated_tokens=0)

    def find_stop_strings(self, sampled_seqs: list[Sequence], finished: list[Sequence]) -> None:
        """Decode the new token of every request being decoded; end those whose text now
        holds a stop string (also those that just ended otherwise: the string wins)."""
        for seq in sampled_seqs:
            detokenizer = seq.detokenizer
            if detokenizer is None:
                continue
            detokenizer.update(seq.token_ids, final=seq.is_finished)
            if detokenizer.stop_reason is None:
                continue
            if not seq.is_finished:
                self.scheduler.finish(seq, "stop")
                finished.append(seq)
            seq.finish_reason, seq.stop_reason = "stop", detokenizer.stop_reason

    def output_text(self, seq: Sequence) -> str:
        """The completion's text: cut before (or after) its stop string if one ended it."""
        if seq.detokenizer is not None and seq.detokenizer.stop_reason is not None:
            return seq.detokenizer.text
        return self.tokenizer.decode(seq.completion_token_ids)

    def abort(self, seqs: Iterable[Sequence] | None = None) -> list[Sequence]:
        """End these requests now (every unfinished one when None), with finish reason
        "abort"; their blocks go back to the pool. Returns those that were not over yet."""
        if seqs is None:
            seqs = [*self.scheduler.running, *self.scheduler.waiting]
        aborted = [seq for seq in seqs if not seq.is_finished]
        for seq in aborted:
            self.scheduler.finish(seq, "abort")
        return aborted

    def is_finished(self) -> bool:
        return self.scheduler.is_finished()

    def check_usable(self) -> None:
        """RuntimeError if this engine can run nothing any more (closed, or its workers died)."""
        self.model_runner.check_usable()

    def close(self) -> None:
        """Give back the model runner's memory (weights, KV cache, CUDA graphs) and, under
        tensor parallelism, its processes."""
        self.model_runner.close()
