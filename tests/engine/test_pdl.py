"""Programmatic dependent launch (``Config.pdl``, ``kernels/triton_support.py``).

A kernel launched with it may start while the kernel before it is still running, so it must
wait (``griddepcontrol.wait``) before it reads anything: checked here in the PTX that Triton
compiles for a Hopper GPU, without one. The GEMV may fetch its weights into L2 before the
wait (no kernel writes them), nothing else. On a GPU: the same tokens with it and without.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanovllm.config import Config
from nanovllm.kernels import triton_support
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams

REPO = Path(__file__).parents[2]

COMPILE = r'''
import json
import torch
torch.cuda.is_available = lambda: True  # load Triton as on a GPU machine, to compile only
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from nanovllm.kernels import decode_attention, gemv, qk_norm_rotary, sample, store_kvcache

def compile_ptx(fn, constants, types, **options):
    signature = {}
    for param in fn.params:
        if param.is_constexpr:
            signature[param.name] = "constexpr"
        elif param.name in types:
            signature[param.name] = types[param.name]
        else:
            signature[param.name] = "*bf16" if param.name.endswith("_ptr") else "i32"
    constants = {**constants, "USE_PDL": True}
    # what a launch tells the compiler of aligned pointers and strides (loads get vectorised)
    attrs = {(i,): [["tt.divisibility", 16]] for i, param in enumerate(fn.params)
             if param.name.endswith("_ptr") or "stride" in param.name}
    kernel = triton.compile(ASTSource(fn, signature, constants, attrs),
                            target=GPUTarget("cuda", 90, 32), options={"launch_pdl": True, **options})
    return kernel.asm["ptx"], kernel.metadata.launch_pdl

KERNELS = {
    "gemv": (gemv.gemv_kernel, dict(ROWS=16, K_PER_SPLIT=512, BLOCK_N=32, BLOCK_K=128,
             HAS_BIAS=True, DOT_PRECISION="tf32", LINES=8), {}, dict(num_warps=4, num_stages=4)),
    "add_splits": (gemv.add_splits_kernel, dict(SPLITS=4, HAS_BIAS=True, BLOCK=1024),
                   {"partial_ptr": "*fp32"}, {}),
    "decode": (decode_attention.decode_attention_kernel, dict(FP8=False,
               NUM_HEADS=16, NUM_KV_HEADS=8, HEAD_DIM=128, BLOCK_SIZE=16, GROUP_ROWS=16,
               BLOCK_N=128, DOT_PRECISION="tf32"), {"split_out_ptr": "*fp32",
               "split_lse_ptr": "*fp32", "scale": "fp32", "block_tables_ptr": "*i32",
               "context_lens_ptr": "*i32"}, dict(num_warps=8, num_stages=2)),
    "decode_fp8": (decode_attention.decode_attention_kernel, dict(FP8=True,
                   NUM_HEADS=16, NUM_KV_HEADS=8, HEAD_DIM=128, BLOCK_SIZE=16, GROUP_ROWS=16,
                   BLOCK_N=128, DOT_PRECISION="tf32"), {"split_out_ptr": "*fp32",
                   "split_lse_ptr": "*fp32", "scale": "fp32", "block_tables_ptr": "*i32",
                   "context_lens_ptr": "*i32", "k_cache_ptr": "*fp8e4nv",
                   "v_cache_ptr": "*fp8e4nv", "k_scales_ptr": "*fp32", "v_scales_ptr": "*fp32"},
                   dict(num_warps=4, num_stages=3)),
    "combine": (decode_attention.combine_splits_kernel, dict(HEAD_DIM=128, MAX_SPLITS=32),
                {"split_out_ptr": "*fp32", "split_lse_ptr": "*fp32"}, {}),
    "store": (store_kvcache.store_kvcache_kernel, dict(ROW=1024, ROW_POW2=1024),
              {"slot_mapping_ptr": "*i64"}, {}),
    "store_fp8": (store_kvcache.store_kvcache_fp8_kernel, dict(HEADS=8, HEADS_POW2=8,
                  HEAD_DIM=128), {"slot_mapping_ptr": "*i64", "k_cache_ptr": "*fp8e4nv",
                  "v_cache_ptr": "*fp8e4nv", "k_scales_ptr": "*fp32", "v_scales_ptr": "*fp32"}, {}),
    "qk_norm_rotary": (qk_norm_rotary.qk_norm_rotary_kernel, dict(Q_HEADS=16, Q_HEADS_POW2=16,
                       K_HEADS=8, K_HEADS_POW2=8, HALF=64, HAS_NORM=True),
                       {"positions_ptr": "*i64", "cos_ptr": "*fp32", "sin_ptr": "*fp32",
                        "eps": "fp32"}, {}),
    "race": (sample.race_kernel, dict(BLOCK_V=sample.BLOCK_V, UNIFORM_BITS=sample.UNIFORM_BITS),
             {"logits_ptr": "*fp32", "scales_ptr": "*fp32", "keys_ptr": "*i64",
              "best_score_ptr": "*fp32", "best_token_ptr": "*i32"}, dict(num_warps=8)),
}
found = {}
for name, (fn, constants, types, options) in KERNELS.items():
    ptx, launch_pdl = compile_ptx(fn, constants, types, **options)
    found[name] = ptx
print(json.dumps(found))
'''


# any instruction that touches global memory (a load, a store, an atomic, an async copy)
GLOBAL_ACCESS = re.compile(r"^\s*(@%p\d+\s+)?(ld|st|atom|red|cp\.async)[.\w:]*\.global", re.M)


def compiled_for_hopper() -> dict:
    child = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True,
                           cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                          "HOME": str(Path.home())})
    missing = ("No module named 'triton'", "FileNotFoundError", "No such file or directory")
    if child.returncode != 0 and any(reason in child.stderr for reason in missing):
        pytest.skip("needs Triton and its bundled ptxas to compile for a GPU")
    assert child.returncode == 0, child.stderr[-3000:]  # ptxas refusing the PTX fails here
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_every_kernel_waits_for_the_one_before_it_before_it_touches_memory():
    for name, ptx in compiled_for_hopper().items():
        wait, launch = ptx.find("griddepcontrol.wait"), ptx.find("griddepcontrol.launch_dependents")
        first_access = GLOBAL_ACCESS.search(ptx)
        assert first_access is not None, name
        assert 0 <= wait < launch, name
        assert wait < first_access.start(), (name, first_access.group(0))
        # only the GEMV does anything before its wait: fetch its weights into L2
        prefetch = ptx.find("prefetch.global.L2")
        assert (0 <= prefetch < wait) if name == "gemv" else prefetch == -1, name


def test_kernels_launch_as_usual_unless_asked():
    assert triton_support.pdl_options() == {"USE_PDL": False}
    triton_support.use_pdl(True)
    try:
        assert triton_support.pdl_options() == {"USE_PDL": True, "launch_pdl": True}
    finally:
        triton_support.use_pdl(False)


def test_pdl_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="pdl"):
        Config(pdl="yes")
    with pytest.raises(ValueError, match=r"compute capability 9\.0 or later"):
        LLM(device="cpu", pdl=True)
    assert triton_support.pdl_options() == {"USE_PDL": False}  # nothing was switched on


@pytest.mark.skipif(not torch.cuda.is_available()
                    or torch.cuda.get_device_capability()[0] < 9, reason="needs a Hopper GPU")
@pytest.mark.parametrize("kv_cache_dtype", ["auto", "fp8"])
@pytest.mark.parametrize("enforce_eager", [False, True])
def test_the_same_tokens_with_and_without_pdl(kv_cache_dtype, enforce_eager):
    """bfloat16, so that the GEMV (the kernel that reads before its wait) runs too."""
    params = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
    prompts = [[(7 * i + j) % 1000 + 10 for j in range(n)] for i, n in enumerate((5, 40, 300))]
    outputs = {}
    try:
        for pdl in (False, True):
            with LLM(pdl=pdl, dtype="bfloat16", kv_cache_dtype=kv_cache_dtype,
                     enforce_eager=enforce_eager, max_model_len=512,
                     gpu_memory_utilization=0.3) as llm:
                assert triton_support.PDL["on"] is pdl
                outputs[pdl] = [o.token_ids
                                for o in llm.generate(prompts, params, use_tqdm=False)]
            assert triton_support.PDL["on"] is False  # close() cleared it
    finally:
        triton_support.use_pdl(False)
    assert outputs[True] == outputs[False]
