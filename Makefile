# nano-vLLM Deep Dive: the commands people type.
#   make html      build the book into _build/html (creates .venv and installs what is missing)
#   make serve     serve _build/html on http://localhost:8000
#   make test      the engine's and the book's tests
#   make latexpdf  the PDF (needs TeX: see README)
#   make doctest   run every executed check of the book again (Sphinx doctest builder)
#   make gpu-check on a GPU machine: rerun the checks that need a GPU, rewrite their records
#   make check-output DOC=source/04-x.md BLOCK=name   what a check prints (paste it under ---)
#   make bench     the benchmark suite on a GPU machine (records in bench-records/)

PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# A CPU build of PyTorch. The default is the one CI installs; on another machine pick any
# CPU (or CUDA) build of torch >= 2.4, e.g. make html TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
SPHINXOPTS ?= -W -n --keep-going
BUILDDIR   ?= _build
SPHINX     := $(PY) -m sphinx
STAMP      := $(VENV)/.installed

.PHONY: venv html serve livehtml latexpdf test linkcheck doctest gpu-check check-output clean \
	system-deps bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[docs,test]"
	@touch $@

venv: $(STAMP)

html: venv
	$(SPHINX) -b html -c . $(SPHINXOPTS) source $(BUILDDIR)/html

serve:
	@test -f $(BUILDDIR)/html/index.html || $(MAKE) html
	$(PYTHON) -m http.server 8000 --bind 127.0.0.1 --directory $(BUILDDIR)/html

livehtml: venv
	$(PY) -m sphinx_autobuild -c . source $(BUILDDIR)/html --port 8000 \
		--watch nanovllm --watch _ext --watch conf.py $(SPHINXOPTS)

latexpdf: venv
	$(SPHINX) -M latexpdf source $(BUILDDIR) -c . $(SPHINXOPTS)

linkcheck: venv
	$(SPHINX) -b linkcheck -c . $(SPHINXOPTS) source $(BUILDDIR)/linkcheck

doctest: venv
	$(SPHINX) -b doctest -c . $(SPHINXOPTS) source $(BUILDDIR)/doctest

# TeX for the PDF and Chromium for the browser tests. Installs them with apt-get when
# running as root on Debian or Ubuntu; elsewhere prints what to install.
system-deps:
	@bash scripts/system-deps.sh

test: venv system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(BUILDDIR)

# The executed checks that need a GPU: run them on this machine's GPUs and rewrite their records
# in source/_records/ (commit them). CHAPTER=04 runs one chapter's, BLOCK=name one block.
gpu-check: venv
	$(SPHINX) -b gpucheck -c . $(SPHINXOPTS) -D nanobook_check_chapter="$(CHAPTER)" \
		-D nanobook_check_block="$(BLOCK)" source $(BUILDDIR)/gpucheck

# What an executed check prints, to paste under its ---: DOC is the page (source/04-x.md or
# 04-x), BLOCK the check's :name: or its number on the page; without BLOCK, every check.
check-output: venv
	@test -n "$(DOC)" || { echo "usage: make check-output DOC=source/04-x.md [BLOCK=name]" >&2; exit 2; }
	PYTHONPATH=_ext $(PY) -m nanobook.show_check "$(DOC)" $(BLOCK)

# The benchmark (nanovllm/bench/): a random Qwen3-0.6B, every workload and variant, the
# transformers baseline on the first 64 requests of workload (a), then the tables. Runs
# with the machine's own Python and torch (CUDA), not the CPU-only .venv. On a laptop CPU:
# python -m nanovllm bench --suite --small
BENCH_MODEL ?= /tmp/nanovllm-qwen3-0.6b
BENCH_OUT   ?= bench-records
bench:
	@test -f $(BENCH_MODEL)/config.json || \
		$(PYTHON) -m nanovllm random-checkpoint $(BENCH_MODEL) --preset qwen3-0.6b
	$(PYTHON) -m nanovllm bench --suite --model $(BENCH_MODEL) --out $(BENCH_OUT) --hf-subset 64
	$(PYTHON) -m nanovllm bench --workload a --subset 64 --engine transformers \
		--model $(BENCH_MODEL) --out $(BENCH_OUT) --max-time 120
	$(PYTHON) -m nanovllm bench --summarize $(BENCH_OUT)
