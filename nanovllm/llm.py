"""The user-facing API: ``LLM(model).generate(prompts, params)`` and ``LLM.stream(...)``.

``generate`` takes one prompt or a list (text, or lists of token ids), one
``SamplingParams`` for all or one per prompt, and returns one ``RequestOutput`` per
prompt in input order, whatever order they finished in. A prompt the engine cannot
run (empty, too long, ids outside the vocabulary, ...) does not stop the others: its
output carries ``finish_reason="error"`` and the reason in ``error``.

``stream`` runs the same requests but yields a ``TokenEvent`` for every token as it is
produced, so a caller can print text while it is being generated.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from nanovllm.engine.detokenizer import IncrementalDetokenizer
from nanovllm.engine.llm_engine import LLMEngine
from nanovllm.sampling_params import SamplingParams


@dataclass
class RequestOutput:
    index: int  # position of the prompt in the generate() call
    prompt: str | None  # the prompt text, or None when it was given as token ids
    prompt_token_ids: list[int]
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length" or "error"
    error: str | None = None
    num_cached_tokens: int = 0  # prompt tokens whose K/V came from the prefix cache


@dataclass
class TokenEvent:
    index: int  # which prompt of the call
    token_id: int | None  # None only for a refused request
    text: str  # text that this token completes (may be "" mid-character)
    finish_reason: str | None = None  # set on the request's last event
    error: str | None = None


@dataclass
class RunStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


class LLM:
    """An engine for one model. With ``tensor_parallel_size=N > 1`` it starts N-1 worker
    processes (spawned, so a script that makes one needs an ``if __name__ == "__main__":``
    guard); ``close()`` or a ``with`` block stops them, and so does the end of the program.
    """

    def __init__(self, model: str = "", **config):
        self.engine = LLMEngine(model, **config)
        self.tokenizer = self.engine.tokenizer
        self.last_run = RunStats()

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _submit(self, prompts, sampling_params) -> tuple[list[RequestOutput], dict]:
        """Submit every prompt; return the outputs (errors filled in) and
        seq_id -> (sequence, its output) for the accepted ones."""
        if not self.engine.is_finished():
            raise RuntimeError("requests of an earlier stream() are still running; consume "
                               "that iterator to the end first")
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        if sampling_params is None or isinstance(sampling_params, SamplingParams):
            sampling_params = [sampling_params or SamplingParams()] * len(prompts)
        if len(sampling_params) != len(prompts):
            raise ValueError(f"got {len(sampling_params)} sampling params for "
                             f"{len(prompts)} prompts; give one, or one per prompt")
        outputs, by_seq_id = [], {}
        for index, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True)):
            output = RequestOutput(index, prompt if isinstance(prompt, str) else None, [])
            try:
                seq = self.engine.add_request(prompt, params)
            except ValueError as error:
                output.finish_reason, output.error = "error", str(error)
            else:
                output.prompt_token_ids = seq.token_ids[:seq.num_prompt_tokens]
                by_seq_id[seq.seq_id] = (seq, output)
            outputs.append(output)
        return outputs, by_seq_id

    def stream(self, prompts, sampling_params=None) -> Iterator[TokenEvent]:
        """Yield one TokenEvent per generated token, across all requests, as steps complete.

        Refused requests come first, as one event each with ``error`` set. Consume the
        iterator to the end: the engine runs one call's requests at a time.
        """
        outputs, by_seq_id = self._submit(prompts, sampling_params)
        for output in outputs:
            if output.error:
                yield TokenEvent(output.index, None, "", "error", output.error)
        detokenizers = {seq_id: IncrementalDetokenizer(self.tokenizer) for seq_id in by_seq_id}
        while not self.engine.is_finished():
            for seq, token_id in self.engine.step().sampled:
                _, output = by_seq_id[seq.seq_id]
                finished = seq.finish_reason is not None
                text = detokenizers[seq.seq_id].update(seq.completion_token_ids, final=finished)
                if finished:
                    self._fill_output(output, seq)
                yield TokenEvent(output.index, token_id, text, seq.finish_reason)

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True
                 ) -> list[RequestOutput]:
        """Run every prompt to completion; one RequestOutput per prompt, in input order."""
        outputs, by_seq_id = self._submit(prompts, sampling_params)
        stats, started = RunStats(), time.perf_counter()
        with tqdm(total=len(outputs), desc="Generating", unit="req", disable=not use_tqdm,
                  dynamic_ncols=True) as bar:
            bar.update(len(outputs) - len(by_seq_id))
            while not self.engine.is_finished():
                step = self.engine.step()
                stats.prompt_tokens += step.num_prompt_tokens
                stats.generated_tokens += step.num_generated_tokens
                stats.seconds = time.perf_counter() - started
                bar.set_postfix_str(f"prompt {stats.prompt_tokens / stats.seconds:.0f} tok/s, "
                                    f"output {stats.generated_tokens / stats.seconds:.0f} tok/s",
                                    refresh=False)
                bar.update(len(step.finished))
        for seq, output in by_seq_id.values():
            self._fill_output(output, seq)
        self.last_run = stats
        return outputs

    def _fill_output(self, output: RequestOutput, seq) -> None:
        output.token_ids = list(seq.completion_token_ids)
        output.finish_reason = seq.finish_reason
        output.num_cached_tokens = seq.num_cached_tokens
        output.text = self.tokenizer.decode(output.token_ids)
