"""The benchmark harness on a CPU: workloads, the roofline arithmetic, records, a real run.

Nothing here asserts a speed (timings depend on the machine); it asserts what was run,
what was counted and how the numbers are derived from token timestamps.
"""

import json
import platform

import pytest

from nanovllm.__main__ import main
from nanovllm.bench import workloads
from nanovllm.bench.harness import RequestTrace, run_workload, summarize, use_scheduler
from nanovllm.bench.record import SCHEMA, environment, make_record, record_name
from nanovllm.bench.report import load_records, summarize_records
from nanovllm.bench.roofline import (
    H100_SXM,
    H200_SXM,
    decode_step_bound,
    decode_step_cost,
    hardware_for,
    model_cost,
    parameter_count,
    workload_bound,
)
from nanovllm.engine.llm_engine import LLMEngine
from nanovllm.models.model_config import ModelConfig
from nanovllm.utils.random_checkpoint import PRESETS
from tests.engine import model_fixtures  # noqa: F401  (one torch thread)

QWEN3_06B = ModelConfig.from_dict(PRESETS["qwen3-0.6b"])


def test_workload_a_is_nano_vllms_benchmark():
    a = workloads.build("a", vocab_size=151936)
    assert len(a.requests) == 256
    # the totals nano-vLLM's README reports for its benchmark run of this workload
    assert (a.num_prompt_tokens, a.num_output_tokens) == (142827, 133966)
    assert all(100 <= len(r.prompt_token_ids) <= 1024 and 100 <= r.max_tokens <= 1024
               for r in a.requests)
    assert max(max(r.prompt_token_ids) for r in a.requests) == 10000
    assert a.engine_settings == {"max_model_len": 4096}


@pytest.mark.parametrize("name", sorted(workloads.BUILDERS))
def test_workloads_are_deterministic_and_seeded(name):
    first = workloads.build(name, vocab_size=151936)
    again = workloads.build(name, vocab_size=151936)
    other = workloads.build(name, vocab_size=151936, seed=1)
    assert first.requests == again.requests
    assert first.requests != other.requests
    small = workloads.build(name, vocab_size=300, small=True)
    assert max(t for r in small.requests for t in r.prompt_token_ids) < 300


def test_shared_prefix_and_mixed_workloads_have_their_shape():
    c = workloads.build("c", vocab_size=151936)
    system = c.requests[0].prompt_token_ids[:2048]
    assert all(r.prompt_token_ids[:2048] == system for r in c.requests)
    assert len({tuple(r.prompt_token_ids[2048:]) for r in c.requests}) == 128
    d = workloads.build("d", vocab_size=151936)
    long = [r for r in d.requests if len(r.prompt_token_ids) == 3584]
    assert [r.arrival_step for r in long] == [32 + 24 * i for i in range(16)]
    assert sum(r.arrival_step == 0 for r in d.requests) == 64


def test_subset_is_the_first_requests():
    a = workloads.build("a", vocab_size=151936)
    sub = a.subset(64)
    assert sub.requests == a.requests[:64] and sub.name == "a[:64]"


def test_bad_workload_name_is_refused():
    with pytest.raises(ValueError, match="workload='z' is invalid"):
        workloads.build("z", vocab_size=100)


def test_qwen3_0_6b_parameters_and_costs_by_hand():
    counts = parameter_count(QWEN3_06B)
    # per layer: qkv 1024 x 4096, o 2048 x 1024, gate+up 1024 x 6144, down 3072 x 1024
    assert counts["layer_matrices"] == 28 * (4_194_304 + 2_097_152 + 6_291_456 + 3_145_728)
    assert counts["layer_other"] == 28 * (2 * 1024 + 2 * 128)  # two norms, q/k norms
    assert counts["embedding"] == 151_936 * 1024 and counts["lm_head"] == 0  # tied
    assert counts["total"] == 596_049_920
    cost = model_cost(QWEN3_06B)
    assert cost.weight_bytes_per_step == 2 * 596_049_920  # tied: the LM head is the embedding
    assert cost.kv_bytes_per_token == 2 * 28 * 8 * 128 * 2 == 114_688
    assert cost.linear_flops_per_token == 2 * 440_401_920
    assert cost.lm_head_flops_per_token == 2 * 151_936 * 1024
    assert cost.attention_flops_per_pair == 4 * 28 * 16 * 128


def test_roofline_of_one_small_request_by_hand():
    cost = model_cost(QWEN3_06B)
    bound = workload_bound(cost, [(3, 2)], H100_SXM, max_num_batched_tokens=8192)
    # 2 steps (prefill, then one decode); the decode attends to 4 tokens; 3 + 1 tokens computed
    assert bound["min_steps"] == 2
    assert bound["weight_bytes"] == 2 * 1_192_099_840
    assert bound["kv_read_bytes"] == (3 + 4) * 114_688
    assert bound["kv_write_bytes"] == 4 * 114_688
    assert bound["flops"] == 4 * 880_803_840 + 2 * 311_164_928 + (6 + 4) * 229_376
    assert bound["bound"] == "memory"
    assert bound["output_tokens_per_s"] == pytest.approx(2 / (2_385_461_248 / 3.35e12))
    step = decode_step_bound(cost, [513], H100_SXM)
    assert step == pytest.approx((1_192_099_840 + 514 * 114_688) / 3.35e12)
    # the step's own bytes and FLOPs: two sequences attending to 513 and 100 tokens
    assert decode_step_cost(cost, [513, 100]) == {
        "bytes": 1_192_099_840 + (613 + 2) * 114_688,
        "flops": 2 * (880_803_840 + 311_164_928) + 613 * 229_376}


def test_roofline_uses_the_datasheet_of_the_gpu_it_ran_on():
    assert hardware_for("NVIDIA H200") is H200_SXM
    assert hardware_for("NVIDIA H100 80GB HBM3") is H100_SXM
    assert hardware_for("NVIDIA A100-SXM4-80GB") is H100_SXM  # named as such in the record
    # the same chip with more bandwidth: a memory-bound step is 3.35 / 4.8 shorter
    cost = model_cost(QWEN3_06B)
    ratio = decode_step_bound(cost, [513], H200_SXM) / decode_step_bound(cost, [513], H100_SXM)
    assert ratio == pytest.approx(3.35 / 4.8)


def test_roofline_of_workload_a_matches_a_token_by_token_count():
    a = workloads.build("a", vocab_size=151936)
    lengths = [(len(r.prompt_token_ids), r.max_tokens) for r in a.requests]
    bound = workload_bound(model_cost(QWEN3_06B), lengths, H100_SXM, 8192)
    decode_context = sum(p + k for p, o in lengths for k in range(1, o))
    assert bound["kv_read_bytes"] == (142_827 + decode_context) * 114_688
    assert bound["min_steps"] == 1024  # the longest output
    assert bound["bound"] == "memory"
    assert 25_000 < bound["output_tokens_per_s"] < 35_000


def test_percentiles_from_token_times():
    traces = [RequestTrace(0.0, [1.0, 1.5, 2.0, 2.5]), RequestTrace(0.5, [1.0, 3.0])]
    results = summarize(traces, prompt_tokens=10, wall=4.0)
    assert results["output_tokens"] == 6 and results["output_tokens_per_s"] == 1.5
    assert results["total_tokens_per_s"] == 4.0
    assert results["ttft_ms"]["p50"] == pytest.approx(750.0)  # 1000 and 500 ms
    assert results["tpot_ms"]["mean"] == pytest.approx(1250.0)  # 500 and 2000 ms
    assert results["itl_ms"]["count"] == 4 and results["itl_ms"]["p50"] == pytest.approx(500.0)


def test_record_carries_environment_and_no_hostname():
    env = environment()
    for key in ("device", "driver", "python", "torch", "triton", "transformers",
                "engine_commit", "date"):
        assert key in env
    record = make_record({"name": "b"}, "nanovllm", {"variant": "eager"}, {}, env)
    assert record["schema"] == SCHEMA and record_name(record) == "nanovllm_b_eager.json"
    assert platform.node() not in json.dumps(record)


def test_every_request_finishes_with_its_tokens_including_late_arrivals():
    engine = LLMEngine("", device="cpu", max_model_len=256)
    workload = workloads.build("d", engine.model_config.vocab_size, small=True)
    use_scheduler(engine, **workload.engine_settings, max_num_batched_tokens=64)
    results = run_workload(engine, workload)
    assert results["output_tokens"] == workload.num_output_tokens
    assert results["ttft_ms"]["count"] == len(workload.requests)
    assert results["steps"] > max(r.arrival_step for r in workload.requests)


def test_cpu_bench_end_to_end_writes_a_record(tmp_path, capsys):
    main(["bench", "--workload", "b", "--small", "--device", "cpu", "--out", str(tmp_path)])
    (record,) = load_records(tmp_path)
    assert record["engine"] == "nanovllm" and record["workload"]["name"] == "b"
    assert record["results"]["output_tokens"] == 16
    assert record["settings"]["resolved_device"] == "cpu"
    # what ran, not only what was asked: "auto" is the plain engine on a CPU, and no GEMV
    assert record["settings"]["overlap_steps"] is False and not record["settings"]["overlapped"]
    assert record["settings"]["gemv_max_rows"] == 16 and not record["settings"]["gemv"]
    assert record["roofline"]["tpot_floor_ms"] > 0
    assert "| nanovllm | b | default |" in summarize_records(tmp_path)
    main(["bench", "--workload", "b", "--small", "--device", "cpu", "--out", str(tmp_path),
          "--overlap-steps", "on", "--variant", "overlapped"])
    overlapped = next(r for r in load_records(tmp_path) if r["settings"]["variant"] == "overlapped")
    assert overlapped["settings"]["overlapped"] and overlapped["settings"]["overlap_steps"]
    assert overlapped["results"]["output_tokens"] == 16


def test_transformers_baseline_counts_only_requested_tokens(tmp_path):
    pytest.importorskip("transformers")
    main(["bench", "--workload", "a", "--small", "--subset", "3", "--engine", "transformers",
          "--device", "cpu", "--out", str(tmp_path)])
    (record,) = load_records(tmp_path)
    requested = workloads.build("a", 4096, small=True).subset(3).num_output_tokens
    assert record["results"]["output_tokens"] == requested
    assert record["settings"]["attn_implementation"] == "sdpa"
    assert not record["results"]["stopped_by_max_time"]


def test_profile_workload_clocks_every_phase_and_restores_the_engine(tmp_path):
    from nanovllm.bench.profile import PhaseClock, profile_workload

    engine = LLMEngine("", device="cpu", max_model_len=256)
    workload = workloads.build("b", engine.model_config.vocab_size, small=True)
    summary = profile_workload(engine, workload, tmp_path)
    phases = summary["host_phase_s"]
    assert set(phases) == {"schedule", "run", "postprocess", *PhaseClock.PARTS}
    assert all(phases[name] > 0 for name in ("schedule", "run", "postprocess", "run: inputs",
                                             "run: sampling arrays"))
    assert phases["run: graph launch"] == 0  # the CPU has no CUDA graphs
    assert phases["run: inputs"] + phases["run: sampling arrays"] < phases["run"]
    assert summary["steps"] == 1 + 16 - 1  # one prefill step, then one step a further token
    # the clock patched instances and a module; none of it stays behind
    from nanovllm.engine import model_runner
    from nanovllm.engine.model_runner import prepare
    from nanovllm.layers.sampler import SamplingValues
    assert model_runner.prepare is prepare
    assert isinstance(vars(SamplingValues)["from_params"], classmethod)
    assert "run" not in vars(engine.model_runner) and "schedule" not in vars(engine.scheduler)
    assert json.loads((tmp_path / "profile_workload_b.json").read_text())["steps"] == 16


def test_profile_workload_clocks_the_overlapped_engine_by_its_own_phases(tmp_path):
    from nanovllm.bench.profile import PhaseClock, profile_workload
    from nanovllm.engine.overlap import OverlappedEngine

    engine = OverlappedEngine("", device="cpu", max_model_len=256, overlap_steps=True)
    workload = workloads.build("b", engine.model_config.vocab_size, small=True)
    phases = profile_workload(engine, workload, tmp_path)["host_phase_s"]
    assert set(phases) == {"schedule", "launch", "resolve", *PhaseClock.PARTS}
    assert all(phases[name] > 0 for name in ("schedule", "launch", "resolve", "run: inputs",
                                             "run: sampling arrays"))
    assert phases["run: inputs"] + phases["run: sampling arrays"] < phases["launch"]
    assert not {"launch", "resolve"} & set(vars(engine))


def test_phase_clock_undoes_its_patches_when_one_fails():
    from types import SimpleNamespace

    from nanovllm.bench.profile import PhaseClock
    from nanovllm.engine import model_runner
    from nanovllm.engine.model_runner import prepare
    from nanovllm.layers.sampler import SamplingValues

    engine = LLMEngine("", device="cpu", max_model_len=256)
    engine.model_runner.graphs = SimpleNamespace()  # no replay to wrap: the last patch fails
    with pytest.raises(AttributeError, match="replay"):
        with PhaseClock(engine):
            pass
    assert model_runner.prepare is prepare
    assert isinstance(vars(SamplingValues)["from_params"], classmethod)
    assert "run" not in vars(engine.model_runner)
    assert not {"schedule", "postprocess"} & set(vars(engine.scheduler))


def test_idle_gaps_are_found_between_the_union_of_kernels_and_placed_in_the_run():
    from nanovllm.bench.profile import busy_seconds, idle_gaps

    # two streams overlapping at first, then gaps of 10 µs, 0.5 ms and 2 ms, in seconds
    intervals = [(0.0, 0.001), (0.0005, 0.002), (0.00201, 0.003), (0.0035, 0.004),
                 (0.006, 0.010)]
    idle = idle_gaps(intervals)
    assert idle["count"] == 3
    assert idle["seconds"] == pytest.approx(0.01e-3 + 0.5e-3 + 2e-3)
    assert idle["seconds"] + busy_seconds(intervals) == pytest.approx(0.010)
    assert idle["by_size"]["under_20us"]["count"] == 1
    assert idle["by_size"]["20us_to_1ms"]["seconds"] == pytest.approx(0.5e-3)
    assert idle["by_size"]["over_1ms"] == {"count": 1, "seconds": pytest.approx(2e-3)}
    # each gap counts in the tenth of the 10 ms span where it starts: at 2, 3 and 4 ms
    assert idle["by_tenth_of_run_s"][2] == pytest.approx(0.01e-3)
    assert idle["by_tenth_of_run_s"][3] == pytest.approx(0.5e-3)
    assert idle["by_tenth_of_run_s"][4] == pytest.approx(2e-3)
    assert [round(g["ms"], 3) for g in idle["longest"]] == [2.0, 0.5, 0.01]
    assert idle["longest"][0]["at_s"] == pytest.approx(0.004)
    assert idle_gaps([(0.0, 1.0), (0.5, 2.0)]) == {"seconds": 0.0, "count": 0}
