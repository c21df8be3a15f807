"""Engine slices: part of an engine file, cut at build time, with annotations.

Syntax (MyST)::

    ```{engine-slice} nanovllm.engine.block_manager:BlockManager.allocate
    :caption: Allocating the blocks of a new sequence

    `self.free_block_ids.popleft()`
    : Takes the oldest free block: the free list is a queue.
    ```

The argument chooses the lines:

* ``module:Qualified.name``: a class, method or function (decorators included),
  found by parsing the file, so the slice follows the code when lines move;
* ``module#name``: the lines between ``# region name`` and ``# endregion name``
  in the file (for regions that are not one object), markers excluded;
* ``module``: the whole file.

``module`` is a dotted module name under the engine root or a path relative to it
(``nanovllm/engine/block_manager.py``). Slices show the engine and nothing else:
the file must lie, once links are followed, inside one of the engine packages
(``nanobook_engine_packages``) or inside this extension (the authoring guide shows
its own code), both under the engine root. An absolute path, a ``..`` that leads
out, or a link to a file elsewhere is an error, so a page cannot publish a file from
outside the repository (``/etc/passwd``) or from its corners (``conf.py``, ``.git/``).
The file must be UTF-8 text.

``:name:``, when given, is the slice's anchor and must be a plain name (see
``nanobook.names``); ``:language:`` overrides the highlighting chosen from the
file's suffix with a Pygments lexer name.

Each annotation is a text pattern in backticks that must occur in exactly one
line of the slice, then ``: `` and the note (MyST). Patterns, never line numbers:
an annotation keeps pointing at the right line when the code above it changes,
and fails the build when the line it explained is gone or has become ambiguous.

HTML: the code with its real line numbers, a numbered marker on every annotated
line, the numbered notes beside the code on wide screens and below it on narrow
ones; hovering or focusing a note or a marker highlights the line
(``_static/nanobook/slice.js``). The header names the file and the line range and
links to a page of the whole file. LaTeX: the same code with the markers at the
ends of the lines and the notes as a numbered list below it.

The page is read again whenever the engine file changes.
"""

from __future__ import annotations

import ast
import html
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_id

from .engine_source import display_path, engine_packages, engine_root, module_file
from .entries import EntrySyntaxError, parse_entries
from .html_attr import attr
from .names import name_problem
from .warnings import BookWarning

SOURCE_PAGE_PREFIX = "code/"  # the whole engine files live at code/<path>.html
_PATTERN = re.compile(r"^(`+)(.+?)\1$")
_LANGUAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+#.-]*")  # a Pygments lexer name
LANGUAGES = {".py": "python", ".json": "json", ".toml": "toml", ".md": "markdown", ".sh": "bash"}


class engine_slice(nodes.General, nodes.Element):
    """A slice of an engine file. Children: the code (literal_block) and the notes."""


class slice_note(nodes.list_item):
    """One numbered annotation; ``line`` is the file line it explains."""


@dataclass
class SliceSpan:
    path: Path
    start: int  # first line, 1-based
    end: int  # last line, inclusive
    what: str  # "BlockManager.allocate", "region allocate-loop" or "whole file"


class SliceError(Exception):
    def __init__(self, kind: BookWarning, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_target(target: str) -> tuple[str, str, str]:
    """``module:Obj.attr`` / ``module#region`` / ``module`` -> (module, kind, name)."""
    if ":" in target:
        module, _, name = target.partition(":")
        return module, "object", name
    if "#" in target:
        module, _, name = target.partition("#")
        return module, "region", name
    return target, "file", ""


def slice_folders(root: Path, packages: tuple[str, ...]) -> list[Path]:
    """What slices may show: each engine package (folder or module) and this extension's folder.

    Each only where it lies under ``root``; every path is resolved (links followed).
    """
    folders = []
    for package in packages:
        base = root.joinpath(*package.split("."))
        folders += [c.resolve() for c in (base, base.with_suffix(".py")) if c.exists()][:1]
    folders.append(Path(__file__).resolve().parent)
    return [f for f in folders if f.is_relative_to(root)]


def _allowed(root: Path, folders: list[Path]) -> str:
    shown = ", ".join(f.relative_to(root).as_posix() + ("/" if f.is_dir() else "")
                      for f in folders) or "nothing: no engine package lies under it"
    return (f"slices show files of {shown} under {root}, named by module "
            "(package.module) or by a path relative to that folder")


def resolve_file(root: Path, module: str, folders: list[Path]) -> Path:
    """The file a slice names, resolved, once it is known to lie inside ``folders``."""
    if "/" in module or module.endswith(".py"):
        if Path(module).is_absolute():
            raise SliceError(BookWarning.SLICE_PATH,
                             f"{module!r} is an absolute path; {_allowed(root, folders)}")
        named = root / module
        path = named.resolve()
    else:
        found = module_file(root, module)
        if found is None:
            rel = module.replace(".", "/")
            raise SliceError(BookWarning.SLICE_FILE,
                             f"no engine module {module!r} (looked for {rel}.py and "
                             f"{rel}/__init__.py under {root})")
        named, path = found, found.resolve()
    if not any(path == f or path.is_relative_to(f) for f in folders):
        links = [p for p in (named, *named.parents) if p.is_relative_to(root) and p != root]
        if any(p.is_symlink() for p in links):
            what = f"{module!r} is a link to {path},"
        elif path != named:
            what = f"{module!r} leads to {path},"
        else:
            what = f"{module!r} ({display_path(root, path)}) is"
        raise SliceError(BookWarning.SLICE_PATH,
                         f"{what} outside the files slices may show; {_allowed(root, folders)}")
    if not path.is_file():
        raise SliceError(BookWarning.SLICE_FILE, f"no engine file {module!r} under {root}")
    return path


def read_text(root: Path, path: Path) -> str:
    """The file's text; a file that is not UTF-8 is an error naming it and the first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SliceError(BookWarning.SLICE_FILE,
                         f"cannot read {display_path(root, path)}: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SliceError(BookWarning.SLICE_FILE,
                         f"{display_path(root, path)} is not UTF-8 text (line {line}, byte "
                         f"{data[error.start]:#04x}: {error.reason}); slices show UTF-8 files only, "
                         "so save it as UTF-8") from None


def find_object(path: Path, text: str, qualname: str) -> SliceSpan:
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        raise SliceError(BookWarning.SLICE_FILE, f"cannot parse {path.name}: {error}") from None
    scope: ast.AST = tree
    found = None
    for part in qualname.split("."):
        candidates = [n for n in getattr(scope, "body", [])
                      if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == part]
        if not candidates:
            known = sorted(n.name for n in getattr(scope, "body", [])
                           if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))
            where = "the module" if scope is tree else found.name
            raise SliceError(BookWarning.SLICE_OBJECT,
                             f"no class or function {part!r} in {where} (it defines: "
                             f"{', '.join(known) or 'nothing'})")
        found = candidates[-1]  # a later definition wins, as in Python
        scope = found
    start = min([found.lineno, *(d.lineno for d in found.decorator_list)])
    return SliceSpan(path, start, found.end_lineno, qualname)


def find_region(path: Path, lines: list[str], name: str) -> SliceSpan:
    begin = re.compile(rf"^\s*(#|//)\s*region\s+{re.escape(name)}\s*$")
    end = re.compile(rf"^\s*(#|//)\s*endregion\s+{re.escape(name)}\s*$")
    starts = [i + 1 for i, line in enumerate(lines) if begin.match(line)]
    ends = [i + 1 for i, line in enumerate(lines) if end.match(line)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0] + 1:
        raise SliceError(BookWarning.SLICE_MARKER,
                         f"expected one '# region {name}' line and one '# endregion {name}' line "
                         f"after it with code between them; found region at lines {starts or 'none'}, "
                         f"endregion at lines {ends or 'none'}")
    return SliceSpan(path, starts[0] + 1, ends[0] - 1, f"region {name}")


class EngineSliceDirective(SphinxDirective):
    required_arguments = 1
    has_content = True
    option_spec = {
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "language": directives.unchanged,
    }

    def fail(self, kind: BookWarning, message: str) -> list[nodes.Node]:
        BookWarning.error(kind, f"engine-slice {self.arguments[0]!r} in {self.env.docname!r}: {message}",
                          env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        target = self.arguments[0]
        module, kind, name = parse_target(target)
        if "name" in self.options and (problem := name_problem(self.options["name"])):
            return self.fail(BookWarning.SLICE_SYNTAX, problem)
        language = self.options.get("language")
        if language is not None and not _LANGUAGE.fullmatch(language):
            return self.fail(BookWarning.SLICE_SYNTAX,
                             f":language: {language!r} is not a lexer name; give a Pygments "
                             "lexer name (letters, digits and + # . _ -), such as python")
        root = engine_root(self.config)
        try:
            path = resolve_file(root, module, slice_folders(root, engine_packages(self.config)))
            self.env.note_dependency(str(path))
            text = read_text(root, path)
            lines = text.splitlines()
            if kind == "object":
                span = find_object(path, text, name)
            elif kind == "region":
                span = find_region(path, lines, name)
            else:
                span = SliceSpan(path, 1, len(lines), "whole file")
        except SliceError as error:
            return self.fail(error.kind, str(error))

        code = textwrap.dedent("\n".join(lines[span.start - 1: span.end]))
        code_lines = code.split("\n")
        try:
            entries = parse_entries(self.content)
        except EntrySyntaxError as error:
            return self.fail(BookWarning.SLICE_SYNTAX, str(error))

        notes: list[tuple[int, str, object]] = []  # (line, pattern, entry)
        for entry in entries:
            match = _PATTERN.match(entry.head)
            if not match:
                return self.fail(BookWarning.SLICE_SYNTAX,
                                 f"annotation {entry.head!r} must start with a pattern in "
                                 "backticks, e.g. `self.free_block_ids.popleft()`")
            pattern = match.group(2).strip() if match.group(1) != "`" else match.group(2)
            if not entry.has_body:
                return self.fail(BookWarning.SLICE_SYNTAX,
                                 f"annotation for pattern {pattern!r} has no note (write it on the "
                                 "next line after ': ')")
            hits = [span.start + i for i, line in enumerate(code_lines) if pattern in line]
            rel = display_path(root, path)
            where = f"{rel}, lines {span.start}-{span.end}"
            if not hits:
                return self.fail(BookWarning.SLICE_PATTERN,
                                 f"pattern {pattern!r} matches no line of the slice ({where})")
            if len(hits) > 1:
                return self.fail(BookWarning.SLICE_AMBIGUOUS,
                                 f"pattern {pattern!r} matches {len(hits)} lines of the slice "
                                 f"({', '.join(map(str, hits))} of {where}); make it longer so it "
                                 "matches exactly one")
            notes.append((hits[0], pattern, entry))
        notes.sort(key=lambda n: n[0])
        lines_seen: dict[int, str] = {}
        for line, pattern, _ in notes:
            if line in lines_seen:
                return self.fail(BookWarning.SLICE_SYNTAX,
                                 f"patterns {lines_seen[line]!r} and {pattern!r} both point at line "
                                 f"{line}; write one note per line")
            lines_seen[line] = pattern

        rel = display_path(root, path)
        node = engine_slice(
            path=rel, start=span.start, end=span.end, what=span.what, target=target,
            caption=self.options.get("caption", ""),
            markers=[[line, number] for number, (line, _, _) in enumerate(notes, start=1)],
            language=self.options.get("language") or LANGUAGES.get(path.suffix, "text"),
            page=SOURCE_PAGE_PREFIX + rel,
        )
        self.set_source_info(node)
        slice_id = self.options.get("name") or make_id(
            self.env, self.state.document, "slice", name or Path(rel).stem)
        node["ids"].append(slice_id)
        self.state.document.ids[slice_id] = node
        block = nodes.literal_block(code, code, language=node["language"], linenos=True,
                                    highlight_args={"linenostart": span.start})
        self.set_source_info(block)
        node += block
        notes_list = nodes.enumerated_list(enumtype="arabic", prefix="", suffix=".",
                                           classes=["nb-slice-notes"])
        for number, (line, _pattern, entry) in enumerate(notes, start=1):
            item = slice_note(line=line, number=number, ids=[f"{slice_id}-note-{number}"])
            item += self.parse_text_to_nodes(entry.body)
            notes_list += item
        if notes:
            node += notes_list
        files = getattr(self.env, "nanobook_engine_pages", None)
        if files is None:
            files = self.env.nanobook_engine_pages = {}
        files.setdefault(self.env.docname, set()).add(rel)
        return [node]


# -- HTML ----------------------------------------------------------------------------------------

def _highlighted_lines(translator, node: engine_slice) -> list[str]:
    """The code highlighted by Pygments, one well-formed HTML string per line."""
    code = node.children[0].astext()
    out = translator.highlighter.highlight_block(code, node["language"], location=node)
    inner = out[out.index("<pre>") + 5: out.rindex("</pre>")]
    inner = inner.removeprefix("<span></span>")
    lines = inner.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def visit_slice_html(self, node: engine_slice) -> None:
    slice_id = node["ids"][0]
    markers = {line: number for line, number in node["markers"]}
    href = self.builder.get_relative_uri(self.builder.current_docname, node["page"])
    href += f"#L{node['start']}"
    wide = " nb-has-notes" if markers else ""
    self.body.append(f'<figure class="nb-slice{attr(wide)}" id="{attr(slice_id)}">\n'
                     '<figcaption class="nb-slice-head">')
    if node["caption"]:
        self.body.append(f'<span class="nb-slice-caption">{html.escape(node["caption"])}</span> ')
    self.body.append(
        f'<a class="nb-slice-path reference internal" href="{attr(href)}">'
        f'<code>{html.escape(node["path"])}</code></a> '
        f'<span class="nb-slice-lines">lines {node["start"]}&#8211;{node["end"]}</span>'
    )
    if node["what"] not in ("whole file",):
        self.body.append(f' <span class="nb-slice-what">{html.escape(node["what"])}</span>')
    self.body.append("</figcaption>\n")
    self.body.append(f'<div class="nb-slice-body{attr(wide)}">')
    rendered = []
    for offset, code_html in enumerate(_highlighted_lines(self, node)):
        line = node["start"] + offset
        gutter = ""
        if line in markers:
            n = markers[line]
            gutter = (f'<a class="nb-marker" href="#{attr(slice_id)}-note-{attr(n)}" '
                      f'data-note="{attr(n)}" aria-label="Note {attr(n)}">{n}</a>')
        cls = "nb-line nb-annotated" if line in markers else "nb-line"
        note = f' data-note="{attr(markers[line])}"' if line in markers else ""
        rendered.append(
            f'<span class="{attr(cls)}" data-line="{attr(line)}"{note}>'
            f'<span class="nb-gutter">{gutter}</span>'
            f'<span class="linenos">{line}</span>{code_html}</span>'
        )
    self.body.append(
        f'<div class="highlight-{attr(node["language"])} notranslate nb-slice-code">'
        f'<div class="highlight"><pre>{chr(10).join(rendered)}\n</pre></div></div>'
    )
    for child in node.children[1:]:
        child.walkabout(self)
    self.body.append("</div>\n</figure>\n")
    raise nodes.SkipNode


def visit_note_html(self, node: slice_note) -> None:
    self.body.append(
        f'<li class="nb-note" id="{attr(node["ids"][0])}" data-note="{attr(node["number"])}" '
        f'data-line="{attr(node["line"])}" tabindex="0">'
        f'<span class="nb-note-line">line {node["line"]}</span> '
    )


def depart_note_html(self, node: slice_note) -> None:
    self.body.append("</li>\n")


# -- LaTeX ---------------------------------------------------------------------------------------

def visit_slice_latex(self, node: engine_slice) -> None:
    from sphinx.util.texescape import escape

    markers = {line: number for line, number in node["markers"]}
    self.body.append(
        f"\n\\begin{{nbslice}}{{{escape(node['path'])}}}{{{node['start']}}}{{{node['end']}}}"
        f"{{{escape(node['caption'])}}}\n"
    )
    code = node.children[0].astext()
    hl = self.highlighter.highlight_block(code, node["language"], linenos=True,
                                          linenostart=node["start"], location=node)
    hl = hl.replace(r"\begin{Verbatim}", r"\begin{sphinxVerbatim}")
    hl = hl.rstrip()
    assert hl.endswith(r"\end{Verbatim}")
    lines = hl[: -len(r"\end{Verbatim}")].rstrip("\n").split("\n")
    for index in range(1, len(lines)):
        line = node["start"] + index - 1
        if line in markers:
            lines[index] += rf"\nbmark{{{markers[line]}}}"
    self.body.append("\n".join(lines) + "\n\\end{sphinxVerbatim}\n")
    for child in node.children[1:]:
        child.walkabout(self)
    self.body.append("\\end{nbslice}\n")
    raise nodes.SkipNode


def visit_note_latex(self, node: slice_note) -> None:
    self.visit_list_item(node)


def depart_note_latex(self, node: slice_note) -> None:
    self.depart_list_item(node)


# -- other builders: the code block and the list, as they are ------------------------------------

def visit_plain(self, node) -> None:
    pass


def depart_plain(self, node) -> None:
    pass


def visit_note_plain(self, node) -> None:
    self.visit_list_item(node)


def depart_note_plain(self, node) -> None:
    self.depart_list_item(node)


# -- the pages of whole engine files -------------------------------------------------------------

def collect_engine_pages(app: Sphinx):
    """One page per engine file that a slice shows, with an anchor per line (``#L42``)."""
    if app.builder.format != "html" or app.builder.name == "singlehtml":
        return
    root = engine_root(app.config)
    wanted = sorted(set().union(*getattr(app.env, "nanobook_engine_pages", {}).values()))
    for rel in wanted:
        path = root / rel
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        language = LANGUAGES.get(path.suffix, "text")
        out = app.builder.highlighter.highlight_block(text, language)
        inner = out[out.index("<pre>") + 5: out.rindex("</pre>")].removeprefix("<span></span>")
        lines = inner.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        body = "".join(
            f'<span class="nb-src-line" id="L{attr(i)}"><a class="linenos" href="#L{attr(i)}">{i}</a>'
            f"{code}</span>\n"
            for i, code in enumerate(lines, start=1)
        )
        title = html.escape(rel)
        context = {
            "title": rel,
            "body": (f'<h1 class="nb-src-title"><code>{title}</code></h1>'
                     f'<p class="nb-src-note">The whole file as this book was built from it, '
                     f'{len(lines)} lines. Slices in the chapters link to their lines here.</p>'
                     f'<div class="highlight-{attr(language)} notranslate nb-src">'
                     '<div class="highlight">'
                     f"<pre>{body}</pre></div></div>"),
            "parents": [],
            "display_toc": False,
        }
        yield (SOURCE_PAGE_PREFIX + rel, context, "page.html")


def purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "nanobook_engine_pages", {}).pop(docname, None)


def merge(app: Sphinx, env, docnames, other) -> None:
    mine = getattr(env, "nanobook_engine_pages", None)
    if mine is None:
        mine = env.nanobook_engine_pages = {}
    for docname, files in getattr(other, "nanobook_engine_pages", {}).items():
        if docname in docnames:
            mine[docname] = files


def add_slice_script(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is not None and any(True for _ in doctree.findall(engine_slice)):
        app.add_js_file("nanobook/slice.js", type="module")


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.latex_style")
    app.setup_extension("nanobook.engine_source")
    app.add_node(
        engine_slice,
        html=(visit_slice_html, None),
        latex=(visit_slice_latex, None),
        text=(visit_plain, depart_plain),
        man=(visit_plain, depart_plain),
        texinfo=(visit_plain, depart_plain),
    )
    app.add_node(
        slice_note,
        html=(visit_note_html, depart_note_html),
        latex=(visit_note_latex, depart_note_latex),
        text=(visit_note_plain, depart_note_plain),
        man=(visit_note_plain, depart_note_plain),
        texinfo=(visit_note_plain, depart_note_plain),
    )
    app.add_directive("engine-slice", EngineSliceDirective)
    app.connect("html-collect-pages", collect_engine_pages)
    app.connect("html-page-context", add_slice_script)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
