"""``profile_step``: the kernels a profiled step starts and the time the GPU is busy in it, from
a bench ``profile.json``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from nanobook.values import ValueContext, profile_step

from tests.conftest import ROOT

SOURCE = ROOT / "source"
RECORD = "bench/h200/profile.json"


def context(srcdir: Path = SOURCE) -> ValueContext:
    return ValueContext(ROOT, SimpleNamespace(), srcdir=srcdir)


def test_a_decode_step_of_one_request_on_the_h200():
    ctx = context()
    # 12 kernels in each of 28 layers, and 7 once a step (embedding, final norm, LM head,
    # sampling): the copies and the memset are not kernels.
    assert profile_step(ctx, RECORD, "bs1.decode_bs1", "kernels") == 12 * 28 + 7
    entries = json.loads((SOURCE / "_records" / RECORD).read_text())["bs1"]["decode_bs1"]
    busy = sum(e["us_per_step"] for e in entries["kernels"] if e["name"] != "aten::copy_")
    assert profile_step(ctx, RECORD, "bs1.decode_bs1", "busy_ms") == pytest.approx(busy / 1000)
    assert ctx.used_files == [SOURCE / "_records" / RECORD] * 2  # the page follows the record


def _write(tmp_path: Path, kernels: list[dict]) -> ValueContext:
    folder = tmp_path / "_records" / "bench" / "toy"
    folder.mkdir(parents=True)
    (folder / "profile.json").write_text(json.dumps({"bs1": {"decode_bs1": {"kernels": kernels}}}))
    return context(tmp_path)


def test_copies_count_once_and_are_not_kernels(tmp_path):
    ctx = _write(tmp_path, [
        {"name": "gemm", "calls_per_step": 3.0, "us_per_step": 30.0},
        {"name": "aten::copy_", "calls_per_step": 1.0, "us_per_step": 2.0},
        {"name": "Memcpy HtoD (Pinned -> Device)", "calls_per_step": 1.0, "us_per_step": 2.0},
        {"name": "Memset (Device)", "calls_per_step": 1.0, "us_per_step": 1.0},
    ])
    assert profile_step(ctx, "bench/toy/profile.json", "bs1.decode_bs1", "kernels") == 3.0
    assert profile_step(ctx, "bench/toy/profile.json", "bs1.decode_bs1", "busy_ms") == 0.033


def test_a_list_the_profiler_may_have_cut_short_is_refused(tmp_path):
    ctx = _write(tmp_path, [{"name": f"k{i}", "calls_per_step": 1.0, "us_per_step": 1.0}
                            for i in range(25)])
    with pytest.raises(ValueError, match=r"bs1\.decode_bs1 lists 25 entries, the profiler's "
                                         r"limit, so it may leave kernels out"):
        profile_step(ctx, "bench/toy/profile.json", "bs1.decode_bs1", "kernels")


def test_bad_names_say_what_exists():
    with pytest.raises(ValueError, match=r"has no run 'bs1\.decode'; at 'decode' it holds: "
                                         r"batch_size, prompt_len, prefill, decode_bs1"):
        profile_step(context(), RECORD, "bs1.decode", "kernels")
    with pytest.raises(ValueError, match=r"quantity 'kernel' is not one of kernels, busy_ms"):
        profile_step(context(), RECORD, "bs1.decode_bs1", "kernel")
