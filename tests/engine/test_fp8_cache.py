"""The 8-bit KV cache (``kv_cache_dtype="fp8"``, ``layers/fp8.py``): the number format's
round trip, the cache's size, and the engine's outputs with it."""

import json
import math
from pathlib import Path

import pytest
import torch

from nanovllm.engine.kv_cache import block_bytes
from nanovllm.layers import fp8
from nanovllm.llm import LLM
from nanovllm.models.model_config import ModelConfig
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import tiny_checkpoint

REPO_MODELS = Path(__file__).parents[2] / "source" / "_data" / "models"


def test_a_row_is_scaled_to_the_whole_range_and_comes_back_within_a_sixteenth():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(64, 8, 128, generator=generator) * torch.logspace(-3, 3, 64)[:, None, None]
    rows[0, 0] = 0.0  # a row of zeros
    stored, scales = fp8.quantize(rows)
    assert stored.dtype == torch.float8_e4m3fn and scales.dtype == torch.float32
    assert scales.shape == rows.shape[:-1]
    largest = rows.abs().amax(dim=-1)
    # each row's largest number is stored as +-448 exactly, so it comes back exactly
    assert torch.equal(stored.float().abs().amax(dim=-1)[largest > 0],
                       torch.full_like(largest[largest > 0], 448.0))
    back = fp8.dequantize(stored, scales)
    normal = rows.abs() >= largest[..., None] / 28672  # above e4m3's smallest normal, scaled
    relative = ((back - rows).abs() / rows.abs())[normal & (rows != 0)]
    assert relative.max().item() <= 1 / 16
    assert relative.max().item() > 1 / 20  # the bound is met, and nearly reached
    assert torch.equal(back[0, 0], torch.zeros(128))
    # each stored number is the e4m3 number nearest to row / scale (a tie: the even code)
    codes = torch.arange(256, dtype=torch.uint8)
    values = codes.view(fp8.FP8).float()
    finite = ~values.isnan()
    codes, values = codes[finite], values[finite]
    wanted = (rows / scales[..., None]).flatten()[:20000]
    distance = (wanted[:, None] - values[None, :]).abs()
    nearest = distance == distance.min(dim=1, keepdim=True).values
    best = torch.where(nearest, (codes[None, :] % 2 == 0).float() + 1, 0).argmax(dim=1)
    assert torch.equal(stored.float().flatten()[:20000], values[best].abs() * wanted.sign())


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_a_scale_is_the_largest_number_over_448_rounded_once(device):
    """A true division on any device, as the Triton store kernel's (whose GPU test compares
    bits with this reference). It guards the GPU: torch there divides by a plain number as a
    multiplication by its reciprocal, an ulp off; a CPU divides truly either way."""
    generator = torch.Generator().manual_seed(1)
    rows = torch.rand(4096, 128, generator=generator) * torch.logspace(-6, 6, 4096)[:, None]
    _, scales = fp8.quantize(rows.to(device))
    exact = (rows.abs().amax(dim=-1).double() / 448).float()  # rounded once, to float32
    assert torch.equal(scales.cpu(), exact)


def test_a_block_of_qwen3_0_6b_takes_52_percent_of_the_bytes():
    config = ModelConfig.from_folder(REPO_MODELS / "Qwen" / "Qwen3-0.6B")
    sixteen_bit = block_bytes(config, 16, torch.bfloat16)
    eight_bit = block_bytes(config, 16, fp8.FP8)
    assert sixteen_bit == 2 * 28 * 8 * 16 * 128 * 2 == 1_835_008
    assert eight_bit == 2 * 28 * 8 * 16 * (128 + 4) == 946_176  # and a scale a row
    assert eight_bit / sixteen_bit == pytest.approx(132 / 256)


def test_the_same_memory_holds_about_twice_the_blocks():
    folder = str(tiny_checkpoint("qwen3", "bfloat16"))
    counts = [LLM(folder, device="cpu", dtype="bfloat16", kv_cache_dtype=kind,
                  cpu_kvcache_gib=0.01).engine.model_runner.num_blocks
              for kind in ("auto", "fp8")]
    config = ModelConfig.from_folder(folder)
    budget = int(0.01 * 2**30)
    assert counts == [budget // block_bytes(config, 16, torch.bfloat16),
                      budget // block_bytes(config, 16, fp8.FP8)]
    head_dim = config.head_dim
    assert counts[1] // counts[0] == 2 * head_dim // (head_dim + 4)


def test_the_cache_holds_eight_bit_rows_and_their_scales():
    llm = LLM(device="cpu", kv_cache_dtype="fp8", num_kvcache_blocks=16)
    attention = llm.engine.model_runner.model.model.layers[0].self_attn.attn
    assert attention.k_cache.dtype == fp8.FP8 and attention.v_cache.dtype == fp8.FP8
    assert attention.k_scales.shape == attention.k_cache.shape[:-1]
    (out,) = llm.generate(["ROMEO:"], SamplingParams(max_tokens=4), use_tqdm=False)
    assert len(out.token_ids) == 4


def test_greedy_text_and_prompt_scores_stay_close_to_the_full_precision_cache():
    """The bundled model, float32 weights: the same greedy tokens for these prompts, and a
    perplexity within 1% on a text (measured: ``source/_records/bench/quality/``)."""
    prompts = ["ROMEO: But soft, what light through yonder window breaks?",
               "JULIET: O Romeo, Romeo, wherefore art thou Romeo?",
               "Two households, both alike in dignity"]
    greedy = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    score = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=True)
    runs = {}
    for kind in ("auto", "fp8"):
        llm = LLM(device="cpu", kv_cache_dtype=kind)
        tokens = [o.token_ids for o in llm.generate(prompts, greedy, use_tqdm=False)]
        (scored,) = llm.generate([" ".join(prompts) * 4], score, use_tqdm=False)
        logprobs = scored.prompt_logprobs[1:]
        runs[kind] = tokens, math.exp(-sum(logprobs) / len(logprobs))
    assert runs["fp8"][0] == runs["auto"][0]
    assert runs["fp8"][1] == pytest.approx(runs["auto"][1], rel=0.01)
    assert runs["fp8"][1] != runs["auto"][1]  # the cache's rounding does reach the scores


def test_a_bad_kv_cache_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^kv_cache_dtype='int8' is invalid: 'auto' \(the "
                                         r"model's dtype\) or 'fp8'"):
        LLM(device="cpu", kv_cache_dtype="int8")


def test_the_quality_record_compares_the_caches_through_the_engine(tmp_path):
    from nanovllm.bench.quality import run_quality, windows

    assert windows(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert windows(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # [8] scores nothing
    record = run_quality(device="cpu", window=64, num_prompts=4, prompt_len=16, new_tokens=8,
                         out_dir=tmp_path)
    results = record["results"]
    assert set(results) == {"auto", "fp8", "fp8-fixed-scale"}
    assert results["auto"]["greedy_agreement_with_auto"]["share"] == 1.0
    assert results["auto"]["perplexity_vs_auto"] == 0.0
    scored = record["setup"]["text_tokens"] - len(windows(list(range(
        record["setup"]["text_tokens"])), 64))  # every token but each window's first
    assert all(r["scored_tokens"] == scored for r in results.values())
    for name in ("fp8", "fp8-fixed-scale"):
        assert 0 < abs(results[name]["perplexity_vs_auto"]) < 0.01
        assert results[name]["num_kvcache_blocks"] > 3 * results["auto"]["num_kvcache_blocks"]
    saved = json.loads((tmp_path / "quality_cpu_float32.json").read_text())
    assert saved["results"] == json.loads(json.dumps(results))


def test_the_roofline_of_an_fp8_cache_counts_its_bytes_and_scales(tmp_path):
    from nanovllm.__main__ import main
    from nanovllm.bench.report import load_records
    from nanovllm.bench.roofline import model_cost

    config = ModelConfig.from_folder(REPO_MODELS / "Qwen" / "Qwen3-0.6B")
    assert model_cost(config).kv_bytes_per_token == 114_688
    assert model_cost(config, 2, kv_cache_fp8=True).kv_bytes_per_token == 2 * 28 * 8 * 132
    main(["bench", "--workload", "b", "--small", "--device", "cpu", "--out", str(tmp_path),
          "--kv-cache-dtype", "fp8", "--dtype", "bfloat16"])
    (record,) = load_records(tmp_path)
    assert record["settings"]["kv_cache_dtype"] == "fp8"
    assert record["settings"]["resolved_dtype"] == "bfloat16"
    assert record["settings"]["resolved_kv_cache_dtype"] == "float8_e4m3fn"
    from nanovllm.kernels.decode_attention import DECODE_TILE, FP8_DECODE_TILE

    assert FP8_DECODE_TILE != DECODE_TILE  # the tile the 8-bit kernel runs with is recorded
    assert record["settings"]["decode_tile"] == FP8_DECODE_TILE
    from nanovllm.engine.llm_engine import resolve_model_folder

    bundled = ModelConfig.from_folder(resolve_model_folder(""))  # what --small runs
    fp8_cost = model_cost(bundled, 2, kv_cache_fp8=True)
    assert record["roofline"]["model_cost"]["kv_bytes_per_token"] == fp8_cost.kv_bytes_per_token
    assert fp8_cost.kv_bytes_per_token < model_cost(bundled, 2).kv_bytes_per_token / 1.8
