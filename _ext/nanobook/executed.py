"""Executed checks: code blocks run at build time, their output shown and asserted.

Syntax (MyST)::

    ```{check}
    :name: free-after-finish
    from nanovllm.engine.block_manager import BlockManager
    manager = BlockManager(num_blocks=8, block_size=4)
    print(manager.num_free_blocks)
    ---
    8
    ```

The code runs when the page is read; what it prints is shown under it. The
lines after a line holding only ``---`` are the expected output: the printed
output must match it, doctest-style (``...`` matches anything, trailing spaces
are ignored), or the build fails. Without ``---`` the output is shown, not
asserted.

Options:

``:name:``        the block's name (letters, digits, ``-``): its anchor, its record's
                  file name and what ``make gpu-check BLOCK=`` selects. Required
                  for GPU blocks.
``:gpus: N``      the block needs N CUDA GPUs (see below).
``:raises: Exc``  the block is meant to raise ``Exc``; the output ends with
                  ``Exc: message``. Any other exception fails the build.
``:depends:``     extra files (globs under the engine root) its output depends on,
                  for GPU records (model weights, say).
``:timeout: S``   the block's time limit in whole seconds, 1 to 3600 (default 60).
``:hide-code:``   run, but do not show the code (setup such as loading a model).
``:hide-output:`` run, but do not show the output.

**Namespace.** The blocks of one page share one namespace and run in page
order, like cells of a notebook; each page starts afresh with one name defined,
``book`` (``book.shared(key, factory)`` keeps an object, such as a loaded model,
for the whole build: see ``nanobook.book``). A GPU block is the exception: it
runs in a namespace of its own (with ``book``), because where there is no GPU its
code does not run at all. So it neither needs nor leaves names, a page behaves
the same with and without a GPU, and its record depends only on its own code and
the engine. When a block fails, the blocks after it on its page are not run.

**GPU blocks.** Where the machine has the GPUs a block asks for, it runs like
any other and the page says which device it ran on. Elsewhere its output comes
from its record in ``source/_records/`` (see ``nanobook.records``): the page
says on which device and when it was recorded. A stale record is a warning; a
missing record is an error. ``make gpu-check`` (the ``gpucheck`` builder) runs
the GPU blocks on a GPU machine and rewrites their records; ``CHAPTER=04`` or
``BLOCK=name`` narrow it.

**Time limit, interrupts.** A block that runs longer than its time limit is
stopped and fails the build (``nanobook.check_timeout``), naming the page, the
block and the limit; ``nanobook.time_limit`` says how the limit is enforced and
where it cannot reach. A ``KeyboardInterrupt`` or ``SystemExit`` that the block
raises is that block's failure; the user's Ctrl-C at the terminal still stops the
build (``nanobook.user_interrupt`` tells the two apart).

**make doctest.** The nodes carry what ``sphinx.ext.doctest`` reads
(``testnodetype``, ``groups``, ``options``, ``skipif``), so ``sphinx-build -b
doctest`` runs every block again, comparing with the expected output where
there is one; GPU blocks are skipped where there is no GPU. The doctest builder
does not run the blocks while reading: it runs them itself, each through
``run_for_doctest``, under the same time limit and the same Ctrl-C rule.

Output is what the code writes to ``sys.stdout`` (``print``); standard error is
shown only when a block fails. Output written straight to the file descriptor
by C code or by child processes is not captured.
"""

from __future__ import annotations

import doctest
import io
import linecache
import re
import sys
import traceback
from contextlib import nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.builders import Builder
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from . import records
from . import time_limit as time_limit_module
from .book import book
from .engine_source import engine_packages, engine_root, file_digest, files_reached
from .time_limit import CheckTimeout, time_limit
from .user_interrupt import watch_ctrl_c
from .warnings import BookWarning

logger = logging.getLogger(__name__)

SEPARATOR = "---"
DEFAULT_TIMEOUT = 60  # seconds a block may run, unless it says otherwise with :timeout:
MAX_TIMEOUT = 3600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_EXC_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


class check_block(nodes.container):
    """An executed check. Rendered as a container by every builder."""


class check_output(nodes.container):
    """The output part of a check: the printed text and where it came from."""


# -- the directive ---------------------------------------------------------------------------

def _gpus(argument: str) -> int:
    value = directives.nonnegative_int(argument)
    return value


class CheckDirective(SphinxDirective):
    has_content = True
    option_spec = {
        "name": directives.unchanged_required,
        "gpus": _gpus,
        "raises": directives.unchanged_required,
        "depends": directives.unchanged_required,
        "timeout": directives.unchanged_required,
        "hide-code": directives.flag,
        "hide-output": directives.flag,
    }

    def fail(self, message: str) -> list[nodes.Node]:
        BookWarning.CHECK_SYNTAX.error(f"check in {self.env.docname!r}: {message}",
                                       env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        lines = list(self.content)
        if SEPARATOR in [line.rstrip() for line in lines]:
            cut = [line.rstrip() for line in lines].index(SEPARATOR)
            code_lines, expected_lines = lines[:cut], lines[cut + 1:]
            expected = "\n".join(expected_lines).strip("\n") + "\n"
        else:
            code_lines, expected = lines, None
        code = "\n".join(code_lines).strip("\n") + "\n"
        if not code.strip():
            return self.fail("the block has no code")
        name = self.options.get("name", "")
        if name and not _NAME.match(name):
            return self.fail(f"name {name!r} may hold only letters, digits, '-' and '_'")
        gpus = self.options.get("gpus", 0)
        if gpus and not name:
            return self.fail("a block with :gpus: needs a :name: (its record is stored under it)")
        raises = self.options.get("raises", "")
        if raises and not _EXC_NAME.match(raises):
            return self.fail(f":raises: {raises!r} is not an exception name")
        timeout = self.options.get("timeout", str(DEFAULT_TIMEOUT))
        if not (timeout.isdigit() and 1 <= int(timeout) <= MAX_TIMEOUT):
            return self.fail(f":timeout: {timeout!r} is not allowed; give the block's time limit "
                             f"in whole seconds, from 1 to {MAX_TIMEOUT} (the default is "
                             f"{DEFAULT_TIMEOUT})")
        try:
            compile(code, "<check>", "exec")
        except SyntaxError as error:
            return self.fail(f"the code does not parse: {error.msg} (line {error.lineno})")

        node = check_block(
            classes=["nb-check"], code=code, expected=expected, name=name, gpus=gpus, raises=raises,
            depends=self.options.get("depends", "").split(), timeout=int(timeout),
            hide_code="hide-code" in self.options, hide_output="hide-output" in self.options,
        )
        self.set_source_info(node)
        if name:
            node_id = f"check-{name}"
            if node_id in self.state.document.ids:
                return self.fail(f"two checks on this page are named {name!r}")
            node["ids"].append(node_id)
            self.state.document.ids[node_id] = node
        # The block's number on its page, as page_blocks counts: its label when it has no name.
        index = self.env.temp_data.get("nanobook_checks", 0) + 1
        self.env.temp_data["nanobook_checks"] = index
        label = block_label(name, index)
        code_node = nodes.literal_block(
            code, code, language="python", classes=["nb-check-code"], testnodetype="testcode",
            groups=["default"],
            test=doctest_source(code, expected, raises, int(timeout), self.env.docname, label))
        if gpus:
            code_node["skipif"] = (f"__import__('nanobook.executed').executed.detected_gpus() < {gpus}")
        self.set_source_info(code_node)
        node += code_node
        output = check_output(classes=["nb-check-output"])
        out_block = nodes.literal_block("", "", language="text", classes=["nb-check-out"])
        doctest_output = doctest_expected(expected, raises)
        if doctest_output is not None:
            out_block.update_all_atts({"testnodetype": "testoutput", "groups": ["default"],
                                       "test": doctest_output,
                                       "options": {doctest.ELLIPSIS: True}})
            if gpus:
                out_block["skipif"] = code_node["skipif"]
        self.set_source_info(out_block)
        output += out_block
        node += output
        return [node]


def block_label(name: str, index: int) -> str:
    """How messages name a block: its ``:name:``, else its number on the page (``#2``)."""
    return name or f"#{index}"


def block_filename(docname: str, label: str) -> str:
    """The file name of the block's code in tracebacks: it names the page and the block."""
    return f"<{docname}: check {label}>"


def doctest_source(code: str, expected: str | None, raises: str, timeout: int, docname: str,
                   label: str) -> str:
    """The code ``sphinx.ext.doctest`` runs: the block, through ``run_for_doctest``."""
    quiet = expected is None and not raises
    return ("__import__('nanobook.executed').executed.run_for_doctest("
            f"{code!r}, globals(), {docname!r}, {label!r}, timeout={timeout!r}, "
            f"quiet={quiet!r})\n")


class BlockInterrupted(Exception):
    """A block raised ``KeyboardInterrupt`` itself (the doctest runner would stop on it)."""


def run_for_doctest(code: str, namespace: dict, docname: str, label: str, timeout: int,
                    quiet: bool) -> None:
    """Run a block for ``make doctest`` under the build's rules.

    Its time limit applies, and a ``KeyboardInterrupt`` it raises itself becomes
    ``BlockInterrupted``, a failure of this block, where the doctest runner would end the
    whole run. Output goes to the doctest runner, or nowhere when the block asserts none.
    """
    compiled = compile(code, block_filename(docname, label), "exec")
    with watch_ctrl_c() as ctrl_c:
        try:
            with redirect_stdout(io.StringIO()) if quiet else nullcontext(), time_limit(timeout):
                exec(compiled, namespace)  # noqa: S102 - running the book's code is the point
        except CheckTimeout as exc:
            raise CheckTimeout(f"check {label} in {docname!r} {timeout_reason(timeout)}") from exc
        except KeyboardInterrupt as exc:
            if ctrl_c.from_user():
                raise
            raise BlockInterrupted(f"check {label} in {docname!r} raised KeyboardInterrupt") from exc
    if ctrl_c.pressed:
        raise KeyboardInterrupt  # the user's Ctrl-C, which the block caught


def doctest_expected(expected: str | None, raises: str) -> str | None:
    """What ``sphinx.ext.doctest`` compares with, or None for nothing."""
    if raises:
        last = (expected or "").rstrip("\n").rsplit("\n", 1)[-1] if expected else f"{raises}: ..."
        return f"Traceback (most recent call last):\n  ...\n{last}\n"
    return expected


# -- running code ----------------------------------------------------------------------------

@dataclass
class Outcome:
    output: str  # what was printed, plus "Exc: message" for an expected exception
    stderr: str
    error: str = ""  # why the block failed (empty when it did what it should)
    used_cuda: bool = False
    timed_out: bool = False

    @property
    def kind(self) -> BookWarning:
        return BookWarning.CHECK_TIMEOUT if self.timed_out else BookWarning.CHECK_FAILED


def new_namespace() -> dict:
    return {"__name__": "__main__", "book": book}


def timeout_reason(timeout: int) -> str:
    default = " (the default)" if timeout == DEFAULT_TIMEOUT else ""
    return (f"did not finish within its time limit of {timeout} s{default} and was stopped; "
            f"if it needs longer, give it more with `:timeout: SECONDS` (at most {MAX_TIMEOUT})")


def run_code(code: str, namespace: dict, filename: str, raises: str = "",
             timeout: int = DEFAULT_TIMEOUT) -> Outcome:
    """Run ``code`` in ``namespace`` under its time limit, capturing what it prints.

    Whatever the block raises is its outcome, ``KeyboardInterrupt`` and ``SystemExit``
    included; only the user's Ctrl-C goes on up and stops the build.
    """
    lines = code.splitlines(keepends=True)
    linecache.cache[filename] = (len(code), None, lines, filename)
    out, err = io.StringIO(), io.StringIO()
    cuda_before = _cuda_initialized()
    try:
        compiled = compile(code, filename, "exec")
    except (SyntaxError, ValueError) as exc:  # (the directive compiled it already)
        return Outcome("", "", error=f"does not compile: {exc}")
    with watch_ctrl_c() as ctrl_c:
        try:
            with redirect_stdout(out), redirect_stderr(err), time_limit(timeout):
                exec(compiled, namespace)  # noqa: S102 - running the book's code is the point
        except CheckTimeout as exc:
            return Outcome(out.getvalue() + _traceback(exc), err.getvalue(),
                           error=timeout_reason(timeout), timed_out=True)
        except BaseException as exc:  # noqa: BLE001 - any failure of the block is reported
            if isinstance(exc, KeyboardInterrupt) and ctrl_c.from_user():
                raise
            return _failure(exc, raises, out.getvalue(), err.getvalue())
    if ctrl_c.pressed:
        raise KeyboardInterrupt  # the user's Ctrl-C, which the block caught
    used_cuda = _cuda_initialized() and not cuda_before
    if raises:
        return Outcome(out.getvalue(), err.getvalue(), error=f"was meant to raise {raises} but did not")
    return Outcome(out.getvalue(), err.getvalue(), used_cuda=used_cuda or _cuda_initialized())


def _failure(exc: BaseException, raises: str, printed: str, stderr: str) -> Outcome:
    kind = type(exc).__name__
    if raises and raises.rsplit(".", 1)[-1] in {c.__name__ for c in type(exc).__mro__}:
        text = f"{kind}: {exc}" if str(exc) else kind
        return Outcome(printed + text + "\n", stderr)
    if isinstance(exc, SystemExit):
        return Outcome(printed, stderr, error=f"called sys.exit({exc.code!r})")
    reason = f"raised {kind}" if not raises else f"raised {kind}, not {raises}"
    reason += f": {exc}" if str(exc) else ""
    return Outcome(printed + _traceback(exc), stderr, error=reason)


def _traceback(exc: BaseException) -> str:
    """The traceback from the block's first frame on: the frames of the runner left out."""
    runner = (__file__, time_limit_module.__file__)
    return "".join(f for f in traceback.format_exception(exc)
                   if not any(path in f for path in runner))


def _cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_initialized())
    except Exception:  # noqa: BLE001
        return False


def output_matches(expected: str, actual: str) -> bool:
    return doctest.OutputChecker().check_output(_normal(expected), _normal(actual), doctest.ELLIPSIS)


def output_difference(expected: str, actual: str) -> str:
    example = doctest.Example("", _normal(expected))
    return doctest.OutputChecker().output_difference(example, _normal(actual), doctest.ELLIPSIS)


def _normal(text: str) -> str:
    lines = [line.rstrip() for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n" if any(lines) else ""


_detected: int | None = None


def detected_gpus() -> int:
    """How many CUDA GPUs this machine has (0 without torch or CUDA)."""
    global _detected
    if _detected is None:
        try:
            import torch

            _detected = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # noqa: BLE001 - no torch, or a broken CUDA set-up: no GPU
            _detected = 0
    return _detected


def available_gpus(config) -> int:
    """GPUs the checks may use: ``nanobook_gpus`` when set (>= 0), else what is detected."""
    return config.nanobook_gpus if config.nanobook_gpus >= 0 else detected_gpus()


def cpu_or_gpu_words(outcome: Outcome) -> str:
    if outcome.used_cuda:
        try:
            import torch

            return torch.cuda.get_device_name(torch.cuda.current_device())
        except Exception:  # noqa: BLE001
            return "a GPU"
    return "CPU"


# -- a page's blocks -------------------------------------------------------------------------

@dataclass
class Block:
    node: check_block
    index: int  # position on the page, from 1

    @property
    def code(self) -> str:
        return self.node["code"]

    @property
    def gpus(self) -> int:
        return self.node["gpus"]

    @property
    def label(self) -> str:
        return block_label(self.node["name"], self.index)

    @property
    def timeout(self) -> int:
        return self.node.get("timeout", DEFAULT_TIMEOUT)

    def filename(self, docname: str) -> str:
        return block_filename(docname, self.label)

    def key(self, config) -> tuple[records.BlockKey, list[str]]:
        root = engine_root(config)
        files = files_reached(root, engine_packages(config), [self.code], self.node["depends"])
        digests = {rel: file_digest(root / rel) for rel in files}
        return records.make_key(self.code, self.gpus, digests), files


def page_blocks(doctree: nodes.Node) -> list[Block]:
    return [Block(node, index) for index, node in enumerate(doctree.findall(check_block), start=1)]


def _show(node: check_block, output: str, origin: str, extra_classes=()) -> None:
    """Fill in the block's output and the sentence saying where it came from."""
    out_node = node.next_node(check_output)
    literal = out_node.children[0]
    if output.strip():
        text = output.rstrip("\n")
        literal.children = [nodes.Text(text)]
        literal.rawsource = text
    else:
        out_node.remove(literal)
        node["printed_nothing"] = True
        if "nb-live" in extra_classes:
            origin = origin.rstrip(".") + "; it printed nothing."
    out_node += nodes.paragraph("", origin, classes=["nb-check-origin", *extra_classes])


def _compare(app: Sphinx, docname: str, block: Block, output: str) -> bool:
    expected = block.node["expected"]
    if expected is None or output_matches(expected, output):
        return True
    BookWarning.CHECK_MISMATCH.error(
        f"check {block.label} in {docname!r}: the output differs from the expected output:\n"
        + output_difference(expected, output), env=app.env, location=block.node)
    return False


def execute_page(app: Sphinx, doctree: nodes.document) -> None:
    """Run the page's blocks in order and put their outputs in the doctree."""
    if app.builder.name in ("doctest", "gpucheck") or not app.config.nanobook_run_checks:
        return  # the doctest builder runs the blocks itself; gpucheck runs them when writing
    blocks = page_blocks(doctree)
    if not blocks:
        return
    env, docname = app.env, app.env.docname
    namespace = new_namespace()
    failed_at: Block | None = None
    for block in blocks:
        if failed_at is not None:
            _show(block.node, "", f"Not run: check {failed_at.label} above it failed.",
                  ["nb-not-run"])
            continue
        if block.gpus:
            _gpu_block(app, docname, block)
            continue
        outcome = run_code(block.code, namespace, block.filename(docname), block.node["raises"],
                           block.timeout)
        _note_engine_dependencies(app, block)
        if outcome.error:
            outcome.kind.error(
                f"check {block.label} in {docname!r} {outcome.error}\n{outcome.output}"
                + (f"\nstandard error:\n{outcome.stderr}" if outcome.stderr else ""),
                env=env, location=block.node)
            _show(block.node, outcome.output, "This block failed during this build.",
                  ["nb-failed"])
            failed_at = block
            continue
        _compare(app, docname, block, outcome.output)
        _show(block.node, outcome.output,
              f"Ran during this build on {cpu_or_gpu_words(outcome)}.", ["nb-live"])


def _note_engine_dependencies(app: Sphinx, block: Block) -> None:
    """The page is read again when an engine file the block reaches changes."""
    root = engine_root(app.config)
    for rel in files_reached(root, engine_packages(app.config), [block.code], block.node["depends"]):
        app.env.note_dependency(str(root / rel))


def _gpu_block(app: Sphinx, docname: str, block: Block) -> None:
    env = app.env
    key, files = block.key(app.config)
    root = engine_root(app.config)
    for rel in files:
        env.note_dependency(str(root / rel))
    path = records.record_path(env.srcdir, docname, block.node["name"])
    env.note_dependency(str(path))
    record = None
    if path.is_file():
        try:
            record = records.load(path)
        except records.RecordError as error:
            BookWarning.RECORD_INVALID.error(
                f"check {block.label} in {docname!r}: record {path.name} cannot be read: {error}",
                env=env, location=block.node)
    stale = record.stale_reasons(key) if record else []
    if stale:
        BookWarning.RECORD_STALE.warn(
            f"check {block.label} in {docname!r}: its GPU record is stale ({'; '.join(stale)}); "
            f"run `make gpu-check CHAPTER={docname} BLOCK={block.node['name']}` on a machine with "
            f"{block.gpus} GPU(s) and commit {path.relative_to(env.srcdir.parent)}",
            location=block.node)
    if available_gpus(app.config) >= block.gpus:
        outcome = run_code(block.code, new_namespace(), block.filename(docname),
                           block.node["raises"], block.timeout)
        if outcome.error:
            outcome.kind.error(
                f"check {block.label} in {docname!r} {outcome.error}\n{outcome.output}",
                env=env, location=block.node)
            _show(block.node, outcome.output, "This block failed during this build.", ["nb-failed"])
            return
        _compare(app, docname, block, outcome.output)
        _show(block.node, outcome.output,
              f"Ran during this build on {cpu_or_gpu_words(outcome)}.", ["nb-live", "nb-gpu"])
        return
    if record is None:
        if not path.is_file():
            BookWarning.RECORD_MISSING.error(
                f"check {block.label} in {docname!r} needs {block.gpus} GPU(s), this machine has "
                f"{available_gpus(app.config)}, and it has no record "
                f"({path.relative_to(env.srcdir.parent)}); run `make gpu-check CHAPTER={docname} "
                f"BLOCK={block.node['name']}` on a GPU machine and commit the record",
                env=env, location=block.node)
        _show(block.node, "", "No recorded output: this block needs a GPU and has no record yet.",
              ["nb-failed"])
        return
    _compare(app, docname, block, record.output)
    origin = record.provenance() + " This build had no GPU, so the output comes from that record."
    classes = ["nb-recorded"]
    if stale:
        origin += (" The record was made for an earlier version of this block or of the engine: "
                   + "; ".join(stale) + ".")
        classes.append("nb-stale")
    _show(block.node, record.output, origin, classes)


# -- make gpu-check ----------------------------------------------------------------------------

class GpuCheckBuilder(Builder):
    """Runs the GPU checks and rewrites their records (``make gpu-check``)."""

    name = "gpucheck"
    epilog = "GPU checks done; the records in source/_records/ were rewritten (see above)."

    def init(self) -> None:
        self.written: list[str] = []
        self.failed: list[str] = []
        self.selected = 0

    def get_outdated_docs(self):
        return self.env.found_docs

    def get_target_uri(self, docname: str, typ: str | None = None) -> str:
        return ""

    def prepare_writing(self, docnames) -> None:
        pass

    def write_doc(self, docname: str, doctree: nodes.document) -> None:
        pass

    def _selected(self, docname: str, block: Block) -> bool:
        chapter = self.config.nanobook_check_chapter.strip()
        wanted = self.config.nanobook_check_block.strip()
        if not block.gpus:
            return False
        if chapter and not (docname == chapter or docname.startswith(chapter + "-")):
            return False
        return not wanted or block.node["name"] == wanted

    def write_documents(self, docnames) -> None:
        gpus = available_gpus(self.config)
        for docname in sorted(self.env.found_docs):
            doctree = self.env.get_doctree(docname)
            blocks = page_blocks(doctree)
            chosen = [b for b in blocks if self._selected(docname, b)]
            if not chosen:
                continue
            self.selected += len(chosen)
            self._run_page(docname, blocks, chosen, gpus)
        if not self.selected:
            BookWarning.GPU_CHECK.warn(
                "gpu-check: no GPU block matches the selection "
                f"(CHAPTER={self.config.nanobook_check_chapter!r}, "
                f"BLOCK={self.config.nanobook_check_block!r})")

    def _run_page(self, docname: str, blocks: list[Block], chosen: list[Block], gpus: int) -> None:
        for block in chosen:
            if gpus < block.gpus:
                self._fail(docname, block, f"needs {block.gpus} GPU(s); this machine has {gpus}", "")
                continue
            outcome = run_code(block.code, new_namespace(), block.filename(docname),
                               block.node["raises"], block.timeout)
            if outcome.error:
                self._fail(docname, block, outcome.error, outcome.output)
                continue
            expected = block.node["expected"]
            if expected is not None and not output_matches(expected, outcome.output):
                self._fail(docname, block, "printed something other than its expected output:\n"
                           + output_difference(expected, outcome.output), "")
                continue
            key, _ = block.key(self.config)
            facts = records.machine_facts(block.gpus, engine_root(self.config),
                                          engine_packages(self.config))
            record = records.Record(
                doc=docname, name=block.node["name"], key=key.key, code_sha256=key.code_sha256,
                gpus=block.gpus, engine_files=key.engine_files, output=outcome.output, **facts)
            path = records.record_path(self.env.srcdir, docname, block.node["name"])
            records.write(path, record)
            self.written.append(str(path.relative_to(self.env.srcdir.parent)))
            logger.info(f"gpu-check: {docname} {block.label}: wrote {self.written[-1]} "
                        f"({facts['device']})")

    def _fail(self, docname: str, block: Block, message: str, output: str) -> None:
        self.failed.append(f"{docname} {block.label}")
        BookWarning.GPU_CHECK.error(
            f"gpu-check: check {block.label} in {docname!r} {message}\n{output}".rstrip(),
            env=self.env, location=block.node, docname=docname)

    def finish(self) -> None:
        logger.info(f"gpu-check: {len(self.written)} record(s) written, {len(self.failed)} failed")
        if self.failed:
            self._app.statuscode = 1


# -- hidden parts --------------------------------------------------------------------------------

class HideParts(SphinxPostTransform):
    """``:hide-code:`` and ``:hide-output:`` take their part out of the rendered page."""

    default_priority = 200

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(check_block)):
            if node["hide_code"] and (node["hide_output"] or node.get("printed_nothing")):
                node.parent.remove(node)
                continue
            if node["hide_code"]:
                node.remove(node.children[0])
            if node["hide_output"]:
                node.remove(node.next_node(check_output))


def _doctest_setup(app: Sphinx, config) -> None:
    line = "from nanobook.book import book"
    if line not in config.doctest_global_setup:
        config.doctest_global_setup = line + "\n" + config.doctest_global_setup


def _builder_inited(app: Sphinx) -> None:
    """The checks import the engine from the engine root, and start with an empty ``book``.

    The root goes first on ``sys.path``. Engine modules already imported from somewhere
    else (another copy of the engine, in tests that build several books in one process)
    are forgotten, so the checks import this book's engine; modules from the root itself
    stay, so objects made before the build keep their classes.
    """
    root = engine_root(app.config)
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in engine_packages(app.config)):
            origin = getattr(sys.modules[name], "__file__", None)
            if origin is None or not Path(origin).resolve().is_relative_to(root):
                del sys.modules[name]
    book.clear()


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.latex_style")
    app.setup_extension("sphinx.ext.doctest")
    app.setup_extension("nanobook.engine_source")
    # GPUs the checks may use: -1 detects them; tests set 0 or a number.
    app.add_config_value("nanobook_gpus", -1, "", types=[int])
    # make gpu-check CHAPTER=04 BLOCK=name: which GPU blocks the gpucheck builder runs.
    app.add_config_value("nanobook_check_chapter", "", "", types=[str])
    app.add_config_value("nanobook_check_block", "", "", types=[str])
    # False: read pages without running their checks (nanobook.show_check runs them itself).
    app.add_config_value("nanobook_run_checks", True, "", types=[bool])
    app.add_node(check_block)
    app.add_node(check_output)
    app.add_directive("check", CheckDirective)
    app.add_builder(GpuCheckBuilder)
    app.add_post_transform(HideParts)
    app.connect("config-inited", _doctest_setup)
    app.connect("builder-inited", _builder_inited)
    app.connect("doctree-read", execute_page)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

