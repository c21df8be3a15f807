"""The user-facing API: ``LLM(model).generate(prompts, params)`` and ``LLM.stream(...)``.

``generate`` takes one prompt or a list (text, or lists of token ids), one
``SamplingParams`` for all or one per prompt, and returns one ``RequestOutput`` per
prompt in input order, whatever order they finished in. A prompt the engine cannot
run (empty, too long, ids outside the vocabulary, ...) does not stop the others: its
output carries ``finish_reason="error"`` and the reason in ``error``.

``stream`` yields a ``TokenEvent`` for every token as it is produced. One call's requests
run at a time, and a call that ends early gives them up: Ctrl-C or any exception in
``generate``, or a stream closed or dropped before its end, aborts them. ``abort`` ends
one request of the running call, or all of them, at once.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from numbers import Integral

from tqdm.auto import tqdm

from nanovllm.engine.overlap import make_engine
from nanovllm.engine.sequence import Sequence
from nanovllm.sampling_params import SamplingParams


@dataclass
class RequestOutput:
    index: int  # position of the prompt in the generate() call
    prompt: str | None  # the prompt text, or None when it was given as token ids
    prompt_token_ids: list[int]
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length", "abort" or "error"
    stop_reason: int | str | None = None  # the stop token id or stop string, if one ended it
    error: str | None = None
    num_cached_tokens: int = 0  # prompt tokens whose K/V came from the prefix cache
    # with SamplingParams(prompt_logprobs=True): log p(prompt token i | those before it)
    prompt_logprobs: list[float | None] | None = None


@dataclass
class TokenEvent:
    index: int  # which prompt of the call
    token_id: int | None  # None when a request ends without one: refused, aborted, failed
    text: str  # text that this token completes (may be "" mid-character or near a stop string)
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
        self.engine = make_engine(model, **config)
        self.tokenizer = self.engine.tokenizer
        self.last_run = RunStats()
        self.current: dict[int, Sequence] = {}  # the running call's requests, by index
        self.aborted: list[Sequence] = []  # aborted by abort(), their last event not yet out

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _submit(self, prompts, sampling_params, detokenize: bool = False
                ) -> tuple[list[RequestOutput], dict[int, tuple[Sequence, RequestOutput]]]:
        """Submit every prompt; return the outputs (errors filled in) and
        seq_id -> (sequence, its output) for the accepted ones."""
        self.engine.check_usable()
        if not self.engine.is_finished():
            raise RuntimeError("requests of an earlier stream() are still running; consume "
                               "that iterator to the end, close() it, or call abort() first")
        prompts = as_prompt_list(prompts)
        params = as_params_list(sampling_params, len(prompts))
        outputs, by_seq_id, self.current = [], {}, {}
        try:
            for index, (prompt, p) in enumerate(zip(prompts, params, strict=True)):
                output = RequestOutput(index, prompt if isinstance(prompt, str) else None, [])
                try:
                    seq = self.engine.add_request(prompt, p, detokenize)
                except ValueError as error:
                    output.finish_reason, output.error = "error", str(error)
                else:
                    output.prompt_token_ids = seq.prompt_token_ids
                    by_seq_id[seq.seq_id] = (seq, output)
                    self.current[index] = seq
                outputs.append(output)
        except BaseException:  # nothing of a half-submitted call stays queued
            self.engine.abort(self.current.values())
            raise
        return outputs, by_seq_id

    def abort(self, index: int | None = None) -> None:
        """End request number ``index`` of the running call now (every one of them when
        None), with finish reason "abort"; its blocks go back to the pool at once. A stream
        then yields its last event; its output keeps the tokens generated so far."""
        if index is not None and index not in self.current:
            raise ValueError(f"no request {index!r} is running; the running call's requests "
                             f"are {sorted(self.current)}")
        chosen = self.current.values() if index is None else [self.current[index]]
        self.aborted += self.engine.abort(chosen)

    def stream(self, prompts, sampling_params=None) -> Iterator[TokenEvent]:
        """Yield one TokenEvent per generated token, across all requests, as steps complete.

        Refused requests come first, as one event each with ``error`` set. The engine runs
        one call's requests at a time: consume the iterator to the end, or ``close()`` it
        (dropping it does too) to abort the requests it still has.
        """
        outputs, by_seq_id = self._submit(prompts, sampling_params, detokenize=True)
        self.aborted = []
        try:
            for output in outputs:
                if output.error:
                    yield TokenEvent(output.index, None, "", "error", output.error)
            while not self.engine.is_finished():
                step = self.engine.step()
                for seq, token_id in step.sampled:
                    if seq.finish_reason != "abort":  # aborted while an earlier event was out
                        yield self._event(seq, by_seq_id, token_id)
                for seq in step.finished:
                    if seq.finish_reason == "error":
                        yield self._event(seq, by_seq_id)
                while self.aborted:
                    yield self._event(self.aborted.pop(0), by_seq_id)
            while self.aborted:  # aborted after the last step
                yield self._event(self.aborted.pop(0), by_seq_id)
        finally:  # also when the caller stops early: close(), garbage collection, an error
            self.engine.abort(seq for seq, _ in by_seq_id.values())

    def _event(self, seq: Sequence, by_seq_id: dict, token_id: int | None = None) -> TokenEvent:
        _, output = by_seq_id[seq.seq_id]
        text = seq.detokenizer.take(final=seq.is_finished) if token_id is not None else ""
        if seq.is_finished:
            self._fill_output(output, seq)
        return TokenEvent(output.index, token_id, text, seq.finish_reason, seq.error)

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True
                 ) -> list[RequestOutput]:
        """Run every prompt to completion; one RequestOutput per prompt, in input order."""
        outputs, by_seq_id = self._submit(prompts, sampling_params)
        stats, started = RunStats(), time.perf_counter()
        try:
            with tqdm(total=len(outputs), desc="Generating", unit="req", disable=not use_tqdm,
                      dynamic_ncols=True) as bar:
                bar.update(len(outputs) - len(by_seq_id))
                # region loop
                while not self.engine.is_finished():
                    step = self.engine.step()
                    stats.prompt_tokens += step.num_prompt_tokens
                    stats.generated_tokens += step.num_generated_tokens
                    stats.seconds = time.perf_counter() - started
                    bar.set_postfix_str(
                        f"prompt {stats.prompt_tokens / stats.seconds:.0f} tok/s, "
                        f"output {stats.generated_tokens / stats.seconds:.0f} tok/s",
                        refresh=False)
                    bar.update(len(step.finished))
                # endregion loop
        except BaseException:  # Ctrl-C, or an error outside a step: give the requests up
            self.engine.abort(seq for seq, _ in by_seq_id.values())
            raise
        for seq, output in by_seq_id.values():
            self._fill_output(output, seq)
        self.last_run = stats
        return outputs

    def _fill_output(self, output: RequestOutput, seq: Sequence) -> None:
        output.token_ids = seq.completion_token_ids
        output.finish_reason, output.stop_reason = seq.finish_reason, seq.stop_reason
        output.error = seq.error
        output.num_cached_tokens = seq.num_cached_tokens
        output.prompt_logprobs = seq.prompt_logprobs
        output.text = self.engine.output_text(seq)


def is_token_ids(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(t, Integral) and not isinstance(t, bool) for t in value))


def as_prompt_list(prompts) -> list:
    """The prompts of a call as a list: it may pass one prompt (text or token ids) or a list
    of them; numpy arrays and torch tensors count as lists."""
    if hasattr(prompts, "tolist") and not isinstance(prompts, str):
        prompts = prompts.tolist()
    if isinstance(prompts, str) or is_token_ids(prompts):
        return [prompts]
    if isinstance(prompts, (list, tuple)):
        return list(prompts)
    raise TypeError(f"prompts must be a string, a list of token ids, or a list of those; "
                    f"got {type(prompts).__name__}")


def as_params_list(sampling_params, count: int) -> list:
    """One SamplingParams (or None, the defaults) for every prompt, or one per prompt."""
    if sampling_params is None or isinstance(sampling_params, SamplingParams):
        return [sampling_params or SamplingParams()] * count
    if not isinstance(sampling_params, (list, tuple)):
        raise TypeError(f"sampling_params must be a SamplingParams, a list of them (one per "
                        f"prompt) or None; got {type(sampling_params).__name__}")
    if len(sampling_params) != count:
        raise ValueError(f"got {len(sampling_params)} sampling params for {count} prompts; "
                         f"give one, or one per prompt")
    return list(sampling_params)
