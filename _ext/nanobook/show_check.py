"""Print what an executed check outputs, so an author can paste it under the check's ``---``.

Usage (from the repository root; ``make check-output DOC=... BLOCK=...`` runs it)::

    python -m nanobook.show_check source/04-paged-attention.md allocate-ten-tokens
    python -m nanobook.show_check 04-paged-attention 3        # the page's third check
    python -m nanobook.show_check 04-paged-attention          # every check of the page

The page is read by Sphinx with the book's configuration (so the checks are exactly the
blocks the build sees), without running them; then its checks run in page order, through
the build's own runner (``nanobook.executed.run_code``), in one namespace with ``book``, as
the build runs them: a block sees what the blocks before it defined. A block that needs more
GPUs than the machine has is not run; its record's output is shown when there is one.

With a block named, standard output is that block's output and nothing else (pipe it or
paste it); a note on standard error says whether it matches the expected output under
``---``, and shows the difference when it does not. Without a block, every block's output is
printed under a header line ``==> check NAME (block N of M, line L) <==``.

Exit status: 0 when the blocks ran, 1 when one failed (its traceback is on standard error),
2 when the page or the block does not exist (the page's blocks are listed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from docutils import nodes

from . import executed, records
from .book import book


class UsageError(Exception):
    """The page or the block named does not exist; the message says what does."""


def docname_of(page: str, srcdir: Path) -> str:
    """The page's document name, from a path (``source/04-x.md``, ``04-x.md``) or a name."""
    path = Path(page)
    for candidate in (path, srcdir / path, Path.cwd() / path):
        if candidate.suffix == ".md" and candidate.is_file():
            try:
                return candidate.resolve().relative_to(srcdir.resolve()).with_suffix("").as_posix()
            except ValueError:
                raise UsageError(f"{page} is not under the book's sources ({srcdir})") from None
    if (srcdir / f"{page}.md").is_file():
        return page
    raise UsageError(f"no page {page!r} in {srcdir}; give a path such as "
                     f"{srcdir.name}/04-paged-attention.md or a name such as 04-paged-attention")


def read_page(confdir: Path, srcdir: Path, docname: str) -> tuple[nodes.document, object]:
    """The page's doctree as the build reads it (its checks not run), and the configuration."""
    from sphinx.application import Sphinx

    found: dict[str, nodes.document] = {}

    def only_this_page(app, env, docnames: list[str]) -> None:
        # Sphinx insists on reading the root page too; it is the landing page, quickly read.
        docnames[:] = sorted({docname, app.config.root_doc})

    def keep(app, doctree) -> None:
        if app.env.docname == docname:
            found["doctree"] = doctree

    with tempfile.TemporaryDirectory(prefix="nanobook-show-check-") as tmp:
        app = Sphinx(str(srcdir), str(confdir), str(Path(tmp) / "out"), str(Path(tmp) / "doctrees"),
                     "dummy", confoverrides={"nanobook_run_checks": False}, status=None,
                     warning=sys.stderr, freshenv=True)
        app.connect("env-before-read-docs", only_this_page)
        app.connect("doctree-read", keep)
        app.builder.read()
        return found["doctree"], app.config


def choose(blocks: list[executed.Block], wanted: str | None, docname: str) -> executed.Block | None:
    """The block named or numbered ``wanted`` (None: all blocks)."""
    if wanted is None:
        return None
    number = wanted.removeprefix("#")
    for block in blocks:
        if block.node["name"] == wanted or (number.isdigit() and block.index == int(number)):
            return block
    listed = ", ".join(f"{b.index} ({b.node['name']})" if b.node["name"] else str(b.index)
                       for b in blocks) or "none"
    raise UsageError(f"no check {wanted!r} on {docname!r}; its checks are {listed}")


def header(block: executed.Block, total: int) -> str:
    name = block.node["name"] or f"#{block.index}"
    return f"==> check {name} (block {block.index} of {total}, line {block.node.line}) <=="


def gpu_output(block: executed.Block, srcdir: Path, docname: str, config) -> str | None:
    """A GPU block this machine cannot run: its record's output, or None."""
    path = records.record_path(srcdir, docname, block.node["name"])
    if not path.is_file():
        print(f"check {block.label}: needs {block.gpus} GPU(s), this machine has "
              f"{executed.available_gpus(config)}, and there is no record ({path}); run "
              f"`make gpu-check CHAPTER={docname} BLOCK={block.node['name']}` on a GPU machine",
              file=sys.stderr)
        return None
    print(f"check {block.label}: needs {block.gpus} GPU(s); this is its record's output "
          f"({records.load(path).provenance()})", file=sys.stderr)
    return records.load(path).output


def compare_note(block: executed.Block, output: str) -> str:
    expected = block.node["expected"]
    if expected is None:
        return (f"check {block.label}: no expected output yet; to assert this output, paste it "
                "under a line holding only --- at the end of the block")
    if executed.output_matches(expected, output):
        return f"check {block.label}: matches the expected output under ---"
    return (f"check {block.label}: differs from the expected output under ---:\n"
            + executed.output_difference(expected, output).rstrip("\n"))


def run(page: str, wanted: str | None, confdir: Path, srcdir: Path) -> int:
    docname = docname_of(page, srcdir)
    doctree, config = read_page(confdir, srcdir, docname)
    blocks = executed.page_blocks(doctree)
    target = choose(blocks, wanted, docname)
    last = target.index if target else len(blocks)
    namespace = executed.new_namespace()
    book.clear()
    for block in blocks[:last]:
        shown = target is None or block is target
        if block.gpus:
            if not shown:
                continue  # a GPU block has a namespace of its own: the others do not need it
            if executed.available_gpus(config) >= block.gpus:
                outcome = executed.run_code(block.code, executed.new_namespace(),
                                            block.filename(docname), block.node["raises"],
                                            block.timeout)
            else:
                if target is None:
                    print(header(block, len(blocks)), flush=True)
                print(gpu_output(block, srcdir, docname, config) or "", end="")
                continue
        else:
            outcome = executed.run_code(block.code, namespace, block.filename(docname),
                                        block.node["raises"], block.timeout)
        if outcome.error:
            print(f"check {block.label} on {docname!r} {outcome.error}\n{outcome.output}"
                  + (f"\nstandard error:\n{outcome.stderr}" if outcome.stderr else ""),
                  file=sys.stderr)
            return 1
        if shown:
            if target is None:
                print(header(block, len(blocks)))
            print(outcome.output, end="", flush=True)
            print(compare_note(block, outcome.output), file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nanobook.show_check",
        description="Print what an executed check outputs, to paste under its ---.")
    parser.add_argument("page", help="the page: source/04-x.md, or its name 04-x")
    parser.add_argument("block", nargs="?", help="the check's :name:, or its number on the page "
                        "(1 for the first); all checks when left out")
    parser.add_argument("--conf-dir", type=Path, default=Path("."),
                        help="the folder of conf.py (default: here)")
    parser.add_argument("--source-dir", type=Path, default=None,
                        help="the book's sources (default: source/ under the conf folder)")
    args = parser.parse_args(argv)
    srcdir = args.source_dir or args.conf_dir / "source"
    try:
        return run(args.page, args.block, args.conf_dir.resolve(), srcdir.resolve())
    except UsageError as error:
        print(f"show_check: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
