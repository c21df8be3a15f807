"""The KV-memory calculator of chapter 1: its per-token formula is the book's
``kv_bytes_per_token`` for every model configuration and every dtype, and the GPU memories it
uses are the ones the references cite."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from docutils import nodes
from nanobook.sims import kv_memory
from nanobook.values import DTYPE_BYTES, kv_bytes_per_token

from tests.conftest import ROOT, require_tool

LOGIC = ROOT / "source" / "_static" / "sim" / "kv-memory" / "logic.js"


def js_kv_bytes(models: list[dict], dtypes: dict[str, int]) -> dict:
    """{model: {dtype: bytes}} from the calculator's kvBytesPerToken, run in Node."""
    node = require_tool("node", "nodejs")
    script = (f"import {{ kvBytesPerToken }} from {json.dumps(LOGIC.as_uri())};\n"
              "let input = ''; for await (const c of process.stdin) input += c;\n"
              "const { models, dtypes } = JSON.parse(input);\n"
              "const out = {};\n"
              "for (const m of models) { out[m.name] = {};\n"
              "  for (const [d, b] of Object.entries(dtypes)) out[m.name][d] = kvBytesPerToken(m, b); }\n"
              "process.stdout.write(JSON.stringify(out));\n")
    proc = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                          text=True, input=json.dumps({"models": models, "dtypes": dtypes}),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_formula_is_kv_bytes_per_token_for_every_config_and_dtype():
    ctx = kv_memory.value_context()
    names = kv_memory.model_names()
    assert len(names) == 6 and "tiny-shakespeare" in names and "Qwen/Qwen3-30B-A3B" in names
    models = [kv_memory.model_entry(ctx, name) for name in names]
    js = js_kv_bytes(models, DTYPE_BYTES)
    python = {name: {dtype: kv_bytes_per_token(ctx, name, dtype) for dtype in DTYPE_BYTES}
              for name in names}
    assert js == python
    assert python["Qwen/Qwen3-0.6B"]["bfloat16"] == 114688  # 2 x 28 x 8 x 128 x 2


def test_the_page_data_takes_the_models_and_the_engines_memory_share():
    data = kv_memory.data({key: p.default for key, p in kv_memory.PARAMS.items()})
    assert [m["name"] for m in data["models"]] == kv_memory.model_names()
    assert data["utilization"] == 0.9  # Config.gpu_memory_utilization
    moe = next(m for m in data["models"] if m["name"] == "Qwen/Qwen3-30B-A3B")
    assert moe["weights"] == {"bfloat16": None, "float16": None, "float32": None}
    qwen = next(m for m in data["models"] if m["name"] == "Qwen/Qwen3-0.6B")
    assert qwen["weights"]["bfloat16"] == 2 * 596049920


def test_a_model_the_page_does_not_have_is_refused_by_name():
    from nanobook.sims import ParamError

    with pytest.raises(ParamError, match=r":model: 'Qwen/Qwen3-7B' is not one of tiny-shakespeare, "
                                         r"Qwen/Qwen3-0.6B, "):
        kv_memory.data({"model": "Qwen/Qwen3-7B", "context": 4096, "requests": 1})


@pytest.mark.parametrize("gpu", kv_memory.GPUS, ids=lambda g: g["name"])
def test_every_gpu_memory_is_the_one_its_reference_cites(gpu):
    references = (ROOT / "source" / "references.md").read_text()
    entry = references.split(f"({gpu['ref']})=", 1)[1].split("\n(ref-", 1)[0]
    gigabytes = gpu["bytes"] // 10**9
    assert re.search(rf"\b{gigabytes} GB\b", entry), (gpu, entry)


def test_kv_bytes_of_many_tokens():
    from nanobook.values import kv_bytes

    ctx = kv_memory.value_context()
    assert kv_bytes(ctx, "Qwen/Qwen3-0.6B", "262144") == 114688 * 262144  # 64 x 4,096
    assert kv_bytes(ctx, "tiny-shakespeare", "10", "bfloat16") == 3072 * 10
    with pytest.raises(ValueError, match="TOKENS must be a positive whole number, got '-3'"):
        kv_bytes(ctx, "Qwen/Qwen3-0.6B", "-3")


def test_a_mixture_of_experts_gets_no_verdict_on_any_gpu():
    ctx = kv_memory.value_context()
    result = kv_memory.plan(ctx, {"model": "Qwen/Qwen3-30B-A3B", "dtype": "bfloat16",
                                  "context": 4096, "requests": 64})
    assert result["weights"] is None
    assert result["perToken"] == 2 * 48 * 4 * 128 * 2
    assert [(g["room"], g["fits"], g["all"]) for g in result["gpus"]] == [(None, None, None)] * 3


def test_the_printed_table_names_the_bundled_model_and_gives_no_verdict_for_experts():
    params = {key: p.default for key, p in kv_memory.PARAMS.items()}
    caption, table = kv_memory.static_form(params, kv_memory.data(params))
    rows = {row[0]: row[1:] for row in
            ([entry.astext() for entry in r.children] for r in table.findall(nodes.row))}
    assert rows["Qwen/Qwen3-30B-A3B"][1:] == ["—", "—", "—"]
    assert "tiny-shakespeare (the bundled model)" in rows
    assert rows["meta-llama/Llama-3.1-70B"][1:] == ["weights do not fit"] * 3
    assert caption.astext().startswith("How many conversations of 4,096 tokens each GPU can hold")
