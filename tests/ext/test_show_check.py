"""``python -m nanobook.show_check``: what a check prints, to paste under its ``---``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

ROOTS = ROOT / "tests" / "ext" / "roots"


def show(root: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    book = tmp_path / root
    shutil.copytree(ROOTS / f"test-{root}", book)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "_ext"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "nanobook.show_check", *args, "--conf-dir",
                           str(book), "--source-dir", str(book)], capture_output=True, text=True,
                          timeout=300, cwd=book, env=env)


def test_a_named_block_prints_its_output_alone(tmp_path):
    proc = show("check", tmp_path, "index.md", "take")
    assert (proc.returncode, proc.stdout) == (0, "0 1\n[2, 3]\n")
    assert proc.stderr == "check take: matches the expected output under ---\n"


def test_a_block_by_number_runs_after_the_blocks_before_it(tmp_path):
    proc = show("check", tmp_path, "index", "#3")  # it uses the pool block 1 made
    assert (proc.returncode, proc.stdout) == (0, "KeyError: 99\n")
    assert proc.stderr == ("check #3: no expected output yet; to assert this output, paste it "
                           "under a line holding only --- at the end of the block\n")


def test_every_block_of_a_page_under_a_header(tmp_path):
    proc = show("check", tmp_path, "index")
    assert proc.returncode == 0
    assert proc.stdout == (
        "==> check setup (block 1 of 5, line 3) <==\n"
        "==> check take (block 2 of 5, line 10) <==\n0 1\n[2, 3]\n"
        "==> check #3 (block 3 of 5, line 19) <==\nKeyError: 99\n"
        "==> check #4 (block 4 of 5, line 24) <==\nnot shown\n"
        "==> check on-gpu (block 5 of 5, line 29) <==\nblocks: 8\n")
    assert "check on-gpu: needs 1 GPU(s); this is its record's output (Recorded on" in proc.stderr


def test_a_difference_from_the_expected_output_is_shown(tmp_path):
    proc = show("check-errors", tmp_path, "mismatch.md", "sum")
    assert (proc.returncode, proc.stdout) == (0, "10\n")
    assert proc.stderr == ("check sum: differs from the expected output under ---:\n"
                           "Expected:\n    11\nGot:\n    10\n")


def test_a_failing_block_is_exit_status_1_with_its_traceback(tmp_path):
    proc = show("check-errors", tmp_path, "failure", "after")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith("check broken on 'failure' raised KeyError: 7\n")
    assert 'File "<failure: check broken>", line 2' in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("index", "nosuch"), "show_check: no check 'nosuch' on 'index'; its checks are 1 (setup), "
                          "2 (take), 3, 4, 5 (on-gpu)\n"),
    (("index", "9"), "show_check: no check '9' on 'index'; its checks are 1 (setup), 2 (take), "
                     "3, 4, 5 (on-gpu)\n"),
    (("nosuch",), "show_check: no page 'nosuch' in {book}; give a path such as "
                  "check/04-paged-attention.md or a name such as 04-paged-attention\n"),
])
def test_an_unknown_page_or_block_is_exit_status_2(tmp_path, args, message):
    proc = show("check", tmp_path, *args)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == message.format(book=tmp_path / "check")
