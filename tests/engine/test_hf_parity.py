"""The engine computes what Hugging Face transformers computes, on the same weights.

CPU, float32: logits of prompts of several lengths (packed into one ragged batch) match
``transformers`` to 1e-4, for Qwen3 (tied and untied), Qwen2 (QKV bias, no q/k norm) and
Llama; greedy decoding of 32 tokens gives the same tokens for a batch of mixed-length
prompts; and a folder written by transformers' own ``save_pretrained`` loads too.

GPU, bfloat16: our logits may differ from float32 logits by no more than twice what
transformers' own bfloat16 forward differs by, plus 0.02.
"""

import os

import pytest
import torch

from nanovllm.config import Config
from nanovllm.engine.model_runner import ModelRunner
from nanovllm.llm import LLM
from nanovllm.models.model_config import ModelConfig
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import packed_logits, tiny_checkpoint

transformers = pytest.importorskip("transformers")

PROMPT_LENGTHS = [1, 7, 16, 17, 40]


def prompts(lengths, vocab_size=259, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (n,), generator=generator).tolist() for n in lengths]


def engine_logits(folder, token_lists, device="cpu", dtype="float32"):
    """Logits at every position of every prompt, computed as one packed prefill step."""
    config = Config(model=str(folder), device=device, dtype=dtype, num_kvcache_blocks=64,
                    enforce_eager=True)
    runner = ModelRunner(config, ModelConfig.from_folder(folder), folder)
    logits = packed_logits(runner, token_lists).float().cpu()
    return logits.split([len(t) for t in token_lists])


def hf_model(folder, device="cpu", dtype=torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.to(device).eval()


def hf_logits(model, token_lists, device="cpu"):
    with torch.inference_mode():
        return [model(torch.tensor([t], device=device)).logits[0].float().cpu()
                for t in token_lists]


@pytest.mark.parametrize("variant", ["qwen3", "qwen3-tied", "qwen2", "llama"])
def test_logits_match_transformers_in_float32(variant):
    folder = tiny_checkpoint(variant)
    token_lists = prompts(PROMPT_LENGTHS)
    ours = engine_logits(folder, token_lists)
    theirs = hf_logits(hf_model(folder), token_lists)
    for n, a, b in zip(PROMPT_LENGTHS, ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=f"prompt of {n} tokens")


def test_folder_saved_by_transformers_loads(tmp_path):
    config = transformers.Qwen2Config(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        initializer_range=0.1)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    token_lists = prompts([5, 23])
    ours = engine_logits(tmp_path, token_lists)
    for a, b in zip(ours, hf_logits(model, token_lists), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_greedy_generation_matches_transformers():
    folder = tiny_checkpoint("qwen3")
    token_lists = prompts([3, 11, 26, 40], seed=1)
    llm = LLM(str(folder), device="cpu", dtype="float32")
    params = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)
    ours = [o.token_ids for o in llm.generate(token_lists, params, use_tqdm=False)]
    model = hf_model(folder)
    for tokens, our_tokens in zip(token_lists, ours, strict=True):
        output = model.generate(torch.tensor([tokens]), max_new_tokens=32, min_new_tokens=32,
                                do_sample=False, pad_token_id=0)
        assert our_tokens == output[0, len(tokens):].tolist()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("which", ["tiny", "big"])
def test_bfloat16_logits_on_gpu_are_as_close_as_transformers_own(which):
    if which == "big":
        folder = os.environ.get("NANOVLLM_TEST_BIG_MODEL")
        if not folder:
            pytest.skip("set NANOVLLM_TEST_BIG_MODEL to a (random) Qwen3-0.6B folder")
        token_lists = prompts([5, 100, 300], vocab_size=259)
    else:
        folder = tiny_checkpoint("qwen3", dtype="bfloat16")
        token_lists = prompts(PROMPT_LENGTHS)
    reference = hf_logits(hf_model(folder, "cuda", torch.float32), token_lists, "cuda")
    theirs = hf_logits(hf_model(folder, "cuda", torch.bfloat16), token_lists, "cuda")
    ours = engine_logits(folder, token_lists, device="cuda", dtype="bfloat16")
    their_error = max((t - r).abs().max().item() for t, r in zip(theirs, reference, strict=True))
    our_error = max((o - r).abs().max().item() for o, r in zip(ours, reference, strict=True))
    scale = max(r.abs().max().item() for r in reference)
    print(f"{which}: max |logit| {scale:.3f}; max error vs float32: "
          f"nanovllm bf16 {our_error:.4f}, transformers bf16 {their_error:.4f}")
    assert our_error <= 2 * their_error + 0.02
