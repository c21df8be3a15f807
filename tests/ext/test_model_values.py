"""Model values on the book's real configurations: sizes and step costs from the engine's roofline."""

from __future__ import annotations

import json
import math
import re
import struct

import pytest

from tests.ext.conftest import ROOT, messages_of, page

QWEN06 = {"weights": 1_192_099_840, "kv": 114_688, "linear": 880_803_840, "lm_head": 311_164_928,
          "pair": 229_376}  # per step, per token, per token, per sampled token, per pair


def _line(html: str, label: str) -> str:
    """The text of the list item that starts with ``label:``."""
    item = re.search(rf"<li><p>{label}: (.*?)</p>", html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", item).split())


def _bundled_model_parameters() -> int:
    """Numbers stored in the bundled model's safetensors file (tied embeddings: stored once)."""
    path = ROOT / "nanovllm" / "data" / "tiny-shakespeare" / "model.safetensors"
    with path.open("rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


@pytest.mark.sphinx("html", testroot="model-values", freshenv=True)
def test_sizes_and_step_costs_of_the_books_models(app):
    app.build()
    assert [m for m in messages_of(app) if "errors.md" not in m] == []
    html = page(app)
    assert _bundled_model_parameters() == 5_771_264
    assert _line(html, "tiny") == ("5,771,264 parameters, 23,085,056 bytes, 6,144 KV bytes per "
                                   "token.")  # float32: 4 bytes; 2 x 6 layers x 2 x 64 x 4
    assert _line(html, "qwen06") == "596,049,920, embedding 155,582,464, step reads 1,192,099,840."
    assert _line(html, "qwen8") == "8,190,735,360, lm head 622,329,856."  # 151,936 x 4,096, untied
    # Meta's published size of Llama 3.1 8B and 70B; 8-bit weights: one byte each.
    assert _line(html, "llama8") == "8,030,261,248, 8,030,261,248 bytes in fp8."
    assert _line(html, "llama70") == "70,553,706,496, 327,680 KV bytes."  # 2 x 80 x 8 x 128 x 2
    assert _line(html, "moe") == "98,304 KV bytes, 128 experts."  # 2 x 48 x 4 x 128 x 2
    q = QWEN06
    decode_bytes = q["weights"] + (200 + 2) * q["kv"]
    decode_flops = 2 * (q["linear"] + q["lm_head"]) + 200 * q["pair"]
    assert _line(html, "decode") == (
        f"{decode_bytes:,} bytes, {decode_flops:,} FLOPs, {decode_flops / decode_bytes:.4f} per "
        f"byte, {decode_bytes / 3.35e12:.6e} s.")
    prefill_bytes = q["weights"] + 10 * q["kv"] + 10 * q["kv"]  # read the prompt's K/V, write it
    prefill_flops = 10 * q["linear"] + q["lm_head"] + 55 * q["pair"]  # 10 x 11 / 2 pairs
    assert _line(html, "prefill") == (f"{prefill_bytes:,} bytes, {prefill_flops:,} FLOPs, "
                                      f"{prefill_bytes / 4.8e12:.6e} s.")
    assert _line(html, "hardware") == "3.350e+12, 9.890e+14, 295.22."


@pytest.mark.sphinx("html", testroot="model-values", freshenv=True)
def test_model_value_errors_say_what_is_allowed(app):
    app.build()
    messages = [m.split(": ERROR: ", 1)[1] for m in messages_of(app) if "errors.md" in m]
    assert messages == [
        "value 'param_count:Qwen/Qwen3-30B-A3B' in 'errors': param_count(Qwen/Qwen3-30B-A3B) "
        "failed: Qwen/Qwen3-30B-A3B is a mixture-of-experts model (Qwen3MoeForCausalLM); "
        "roofline.py counts the parameters and FLOPs of dense decoders only [nanobook.value]",
        "value 'param_count:Qwen/Qwen3-0.6B,heads' in 'errors': param_count(Qwen/Qwen3-0.6B, "
        "heads) failed: part 'heads' is not one of total, embedding, layer_matrices, "
        "layer_other, final_norm, lm_head [nanobook.value]",
        "value 'decode_step:Qwen/Qwen3-0.6B,0,100,bytes' in 'errors': decode_step(Qwen/Qwen3-0.6B, "
        "0, 100, bytes) failed: BATCH must be a positive whole number, got '0' [nanobook.value]",
        "value 'decode_step:Qwen/Qwen3-0.6B,2,100,watts' in 'errors': decode_step(Qwen/Qwen3-0.6B, "
        "2, 100, watts) failed: quantity 'watts' is not one of bytes, flops, intensity, "
        "seconds-h100, seconds-h200 [nanobook.value]",
        "value 'hardware:A100,bandwidth' in 'errors': hardware(A100, bandwidth) failed: GPU "
        "'A100' is not one of H100, H200 [nanobook.value]",
        "value 'weight_bytes:Qwen/Qwen3-0.6B,float64' in 'errors': weight_bytes(Qwen/Qwen3-0.6B, "
        "float64) failed: dtype 'float64' is not one of float32, float16, bfloat16, "
        "float8_e4m3fn, int8 [nanobook.value]",
    ]
    assert app.statuscode == 1


@pytest.mark.sphinx("html", testroot="model-values", freshenv=True)
def test_a_model_value_depends_on_the_config_and_the_roofline(app):
    app.build()
    deps = {str(p) for p in app.env.dependencies["index"]}
    assert str(ROOT / "nanovllm" / "bench" / "roofline.py") in deps
    assert str(ROOT / "nanovllm" / "models" / "model_config.py") in deps
    assert str(ROOT / "source" / "_data" / "models" / "meta-llama" / "Llama-3.1-70B"
               / "config.json") in deps


def test_the_model_configs_are_what_the_references_cite():
    """Each copied config.json is cited in references.md with its Hugging Face page."""
    references = (ROOT / "source" / "references.md").read_text()
    folders = sorted((ROOT / "source" / "_data" / "models").glob("*/*/config.json"))
    names = [p.parent.relative_to(p.parents[2]).as_posix() for p in folders]
    assert names == ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-8B",
                     "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-8B"]
    for name in names:
        assert f"<https://huggingface.co/{name}>" in references, name
        json.loads((ROOT / "source" / "_data" / "models" / name / "config.json").read_text())


def test_units_binary_and_decimal():
    """GiB are 1024³ bytes; GB are 10⁹, as GPU datasheets count them (an H100's 80 GB)."""
    from nanobook.values import format_value

    assert format_value(141_107_412_992, "GB") == "141.1"
    assert format_value(141_107_412_992, "GiB") == "131.4"
    assert format_value(80 * 10**9, "GB") == "80"
    assert format_value(114_688, "KiB") == "112"
    assert format_value(5_382_943_231.0, "billion") == "5.4"  # a count, in the prose's words
