"""The PDF: the LaTeX build succeeds and the book's chapters are in the PDF's outline."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SPHINX_OPTS, require_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    require_tool("xelatex", "texlive-xetex")
    require_tool("latexmk", "latexmk")
    out = tmp_path_factory.mktemp("pdf")
    cmd = [sys.executable, "-m", "sphinx", "-M", "latexpdf", "source", str(out), "-c", str(ROOT),
           *SPHINX_OPTS]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr
    path = out / "latex" / "nano-vllm-deep-dive.pdf"
    assert path.is_file()
    return path


def expected_titles() -> list[str]:
    """The written chapters, then the appendices of conf.py (titled by their first heading)."""
    conf = runpy.run_path(str(ROOT / "conf.py"))
    written = [c["title"] for c in conf["nanobook_chapters"]
               if (ROOT / "source" / f"{c['doc']}.md").exists()]
    appendices = []
    for doc in conf["latex_appendices"]:
        text = (ROOT / "source" / f"{doc}.md").read_text(encoding="utf-8")
        appendices.append(re.search(r"^# (.+)$", text, re.M).group(1))
    return written + appendices


def test_the_answer_key_comes_last():
    conf = runpy.run_path(str(ROOT / "conf.py"))
    assert conf["latex_appendices"][-1] == "answer-key"


def test_outline_has_every_chapter_in_order(pdf):
    toc = pdf.with_suffix(".toc").read_text(errors="replace")
    chapters = re.findall(r"\\contentsline\s*\{chapter\}\{\\numberline\s*\{[^}]*\}([^}]*)\}", toc)
    assert chapters == expected_titles()


def test_chapters_keep_their_book_numbers(pdf):
    """Chapter 4 is chapter 4 in the PDF too, while chapters before it are unwritten, so
    headings agree with cross-references such as "Chapter 5, The Scheduler"."""
    conf = runpy.run_path(str(ROOT / "conf.py"))
    written = [(str(int(c["number"])), c["title"]) for c in conf["nanobook_chapters"]
               if (ROOT / "source" / f"{c['doc']}.md").exists()]
    toc = pdf.with_suffix(".toc").read_text(errors="replace")
    numbered = re.findall(r"\\contentsline\s*\{chapter\}\{\\numberline\s*\{([^}]*)\}([^}]*)\}", toc)
    assert numbered[:len(written)] == written


def test_pdf_text_has_title_and_chapters(pdf):
    pdftotext = require_tool("pdftotext", "poppler-utils")
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "nano-vLLM Deep Dive" in text
    for title in expected_titles():
        assert title in text, title


def test_the_interactive_parts_have_their_static_forms(pdf):
    """The guide's quiz, record, simulator and slices, as the PDF prints them."""
    pdftotext = require_tool("pdftotext", "poppler-utils")
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"Check your understanding\s+Answers and explanations: page \d+", text)
    assert re.search(r"\(A\) .+\n\s*\(B\) .+\n\s*\(C\) ", text)  # lettered options
    assert "Recorded on NVIDIA H100 80GB HBM3" in text  # a GPU record, with its device
    assert "Simulator: Paged KV allocator" in text and "Interactive version:" in text
    # the trace table computed from the engine: free lists and the contiguous arena's holes
    assert re.search(r"free: \d+ \d+", text) and re.search(r"holes: \d+-\d+", text)
    key = text[text.rindex("ANSWER KEY"):]
    assert "How this book is built" in key and re.search(r"Answer: [A-D]", key)
