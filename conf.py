"""Sphinx configuration of nano-vLLM Deep Dive.

The sources live in ``source/``; this file sits at the top of the repository
next to the engine (``nanovllm/``) and the book's extension (``_ext/``), so a
build is ``sphinx-build -c . source _build/html`` (the Makefile does it).
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.resolve()
sys.path.insert(0, str(ROOT / "_ext"))
sys.path.insert(0, str(ROOT))

with open(ROOT / "pyproject.toml", "rb") as f:
    _project = tomllib.load(f)["project"]

# -- Project ---------------------------------------------------------------------------------
project = "nano-vLLM Deep Dive"
author = "The nano-vLLM Deep Dive authors"
copyright = f"2026, {author}. Apache-2.0"
release = version = _project["version"]

# -- General ---------------------------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx_copybutton",
    "nanobook",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_records", "_data", "**/.ipynb_checkpoints"]
templates_path = []
nitpicky = True
pygments_style = "friendly"
pygments_dark_style = "monokai"

myst_enable_extensions = ["colon_fence", "deflist", "substitution", "attrs_inline", "attrs_block"]
myst_enable_extensions += ["dollarmath", "amsmath"]  # $...$, $$...$$ (nanobook.offline_math)
myst_heading_anchors = 3

# The chapters, in order. The landing page's grid, the reading times and the
# table of contents all follow this list; a chapter whose page does not exist
# yet is shown as "in preparation" and is not in the table of contents.
nanobook_chapters = [
    {"number": "01", "doc": "01-what-is-inference", "title": "What Is LLM Inference?",
     "topic": "Tokens, the autoregressive loop, queries, keys and values, and why inference is "
              "bound by memory bandwidth, compute, capacity and launch overhead."},
    {"number": "02", "doc": "02-architecture", "title": "Architecture",
     "topic": "The engine's package map, control plane versus data plane, and the life of one "
              "request from generate() to text."},
    {"number": "03", "doc": "03-kv-cache", "title": "KV Cache",
     "topic": "The physical cache tensor, slot mapping, the store kernel, grouped-query "
              "attention and bytes per token."},
    {"number": "04", "doc": "04-paged-attention", "title": "PagedAttention",
     "topic": "Virtual memory for keys and values: block tables, the free list, fragmentation "
              "and paged decode attention."},
    {"number": "05", "doc": "05-scheduler", "title": "The Scheduler",
     "topic": "Continuous batching, token and sequence budgets, and preemption by recompute."},
    {"number": "06", "doc": "06-prefill-vs-decode", "title": "Prefill vs Decode",
     "topic": "Arithmetic intensity, the roofline, TTFT and TPOT, and chunked prefill."},
    {"number": "07", "doc": "07-prefix-caching", "title": "Prefix Caching",
     "topic": "Content-addressed blocks, chained hashes, collision guards and reference counts."},
    {"number": "08", "doc": "08-sampling", "title": "Sampling",
     "topic": "From logits to tokens: greedy, temperature, top-k, top-p, the exponential race "
              "and seeds."},
    {"number": "09", "doc": "09-tensor-parallelism", "title": "Tensor Parallelism",
     "topic": "Column- and row-parallel layers, vocabulary-parallel embeddings, all-reduce and "
              "when splitting a model pays."},
    {"number": "10", "doc": "10-optimization-stack", "title": "Optimization Stack",
     "topic": "Our Triton attention, CUDA graphs, torch.compile, kernel fusion and Amdahl's law."},
    {"number": "11", "doc": "11-benchmarks", "title": "Benchmarks",
     "topic": "Throughput versus latency, recorded results with their hardware, and reading "
              "benchmarks honestly."},
]

# -- The book's extension (_ext/nanobook) ---------------------------------------------------
# Engine slices and executed checks find the engine here (the folder of this file holds
# nanovllm/); model configs for {value} live under source/_data/models/<org>/<name>/.
nanobook_engine_packages = ["nanovllm"]
nanobook_model_dirs = ["source/_data/models"]
nanobook_models = {"tiny-shakespeare": "nanovllm/data/tiny-shakespeare"}  # the bundled model
# Pages only the PDF has: on the web every quiz gives its own answers.
nanobook_latex_only_docs = ["answer-key"]
# Where the PDF points readers for the interactive version (Read the Docs sets it).
html_baseurl = os.environ.get("READTHEDOCS_CANONICAL_URL", "")
# The copy button copies code, not the line numbers or annotation markers of engine slices.
copybutton_exclude = ".linenos, .gp, .go, .nb-gutter"

# -- HTML ------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["source/_static"]
html_css_files = ["book.css"]
html_favicon = "source/_static/favicon.svg"
html_context = {"default_mode": "auto"}  # the light/dark toggle starts from the reader's system
html_last_updated_fmt = None
# Math from the copy of MathJax in source/_static/mathjax/, never from a CDN; its menu would
# load more components, so it is off (nanobook.offline_math says why this file).
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = {"options": {"enableMenu": False}}
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
    "show_navbar_depth": 1,
}
html_show_sourcelink = False

# -- LaTeX / PDF -----------------------------------------------------------------------------
latex_engine = "xelatex"
latex_use_xindy = False
# The PDF has its own root page (source/book.md): the web landing page's sections would
# otherwise become chapters. nanobook leaves book.md out of every non-LaTeX build.
nanobook_latex_root = "book"
latex_documents = [
    (nanobook_latex_root, "nano-vllm-deep-dive.tex", project, author, "manual"),
]
latex_appendices = ["glossary", "references", "how-this-book-is-built", "answer-key"]
latex_toplevel_sectioning = "chapter"
latex_show_urls = "no"
latex_elements = {
    "papersize": "a4paper",
    "pointsize": "10pt",
    "preamble": r"\setcounter{tocdepth}{1}",
    "printindex": "",
}
