"""Simulators: mount a named interactive widget with parameters.

Syntax (MyST)::

    ```{simulator} paged-allocator
    :blocks: 12
    :block-size: 4
    :caption: Add, grow and finish sequences.
    ```

The argument names a widget of ``nanobook.sims``; the other options are its
parameters, checked against the types and limits the widget declares (an
unknown widget or parameter, or a bad value, is an error naming the allowed ones).
``:name:``, when given, is the figure's anchor and must be a plain name (see
``nanobook.names``); without it the anchor is ``sim-<widget>``.

HTML: a mount point carrying the parameters (and whatever data the widget
computes at build time from the engine) as JSON, the loader
``_static/sim/loader.js`` and the widget's own modules, on the pages that use a
simulator and no others. Plain ES modules, nothing from other hosts. The static
form is in the page too, folded ("The same run in the Python engine").

LaTeX: the static form (a figure or a trace table produced at build time from
the Python engine with the default or given parameters), and the web address of
the interactive version (``nanobook_web_url``, by default ``html_baseurl``).

A widget whose data comes from running the engine (``nanobook.sims.engine_trace``)
names the engine modules it runs; the page is read again when any engine file they
reach changes, as for executed checks. Every page with a simulator also gets the
widget kit's style sheet (``_static/sim/kit/kit.css``); the kit's modules are
imported by the widgets themselves.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_id

from .engine_source import engine_packages, engine_root, files_reached
from .html_attr import attr
from .names import name_problem
from .sims import ParamError, Widget, registry
from .warnings import BookWarning


class simulator(nodes.General, nodes.Element):
    """A widget's mount point. Children: caption paragraph (optional), static form container."""


class _AnyOption(dict):
    """An option spec that takes every key: the widget's parameters are checked in ``run``."""

    def __missing__(self, key):
        return directives.unchanged


class SimulatorDirective(SphinxDirective):
    required_arguments = 1
    has_content = False
    option_spec = _AnyOption(caption=directives.unchanged, name=directives.unchanged)

    def fail(self, message: str) -> list[nodes.Node]:
        BookWarning.SIMULATOR.error(f"simulator {self.arguments[0]!r} in {self.env.docname!r}: "
                                    f"{message}", env=self.env, location=self.get_location())
        return []

    def _note_engine_files(self, widget: Widget) -> None:
        """The page is read again when an engine file the widget's data depends on changes."""
        if not (widget.engine_modules or widget.engine_files):
            return
        root = engine_root(self.config)
        imports = [f"import {module}" for module in widget.engine_modules]
        for rel in files_reached(root, engine_packages(self.config), imports, widget.engine_files):
            self.env.note_dependency(str(root / rel))

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if "name" in self.options and (problem := name_problem(self.options["name"])):
            return self.fail(problem)
        widgets = registry()
        if name not in widgets:
            return self.fail(f"no such widget; known widgets: {', '.join(sorted(widgets))}")
        widget = widgets[name]
        params = {key: p.default for key, p in widget.params.items()}
        for key, raw in self.options.items():
            if key in ("caption", "name"):
                continue
            if key not in widget.params:
                allowed = ", ".join(f":{k}: ({p.help}, default {p.shown_default()})"
                                    for k, p in widget.params.items())
                return self.fail(f"unknown parameter :{key}:; it takes {allowed}")
            try:
                params[key] = widget.params[key].convert(key, raw or "")
            except ValueError as error:
                return self.fail(str(error))
        try:
            payload = widget.data(params)
        except ParamError as error:
            return self.fail(str(error))
        except Exception as error:  # noqa: BLE001 - the engine's message is what the author needs
            return self.fail(f"computing its data from the engine failed: {error!r}")
        finally:
            self._note_engine_files(widget)
        sim_id = self.options.get("name") or make_id(self.env, self.state.document, "sim", name)
        node = simulator(widget=name, title=widget.title, payload=json.dumps(payload),
                         ids=[sim_id], doc=self.env.docname)
        self.state.document.ids[sim_id] = node
        self.set_source_info(node)
        caption = self.options.get("caption", "")
        if caption:
            inline, messages = self.parse_inline(caption, lineno=self.lineno)
            node += nodes.paragraph("", "", *inline, classes=["nb-sim-caption"])
            node += messages
        static = nodes.container(classes=["nb-sim-static"])
        if widget.static_form is not None:
            try:
                static += widget.static_form(params, payload)
            except Exception as error:  # noqa: BLE001
                return self.fail(f"building its static form from the engine failed: {error!r}")
        node += static
        return [node]


# -- HTML --------------------------------------------------------------------------------------

def visit_simulator_html(self, node: simulator) -> None:
    self.body.append(
        f'<figure class="nb-sim" id="{attr(node["ids"][0])}">'
        f'<div class="nb-sim-mount" data-widget="{attr(node["widget"])}" '
        f"data-params='{attr(node['payload'])}' "
        f'aria-label="{attr(node["title"])} (interactive)" role="group">'
        f'<p class="nb-sim-loading">The interactive version loads here '
        f'({html.escape(node["title"])}); it needs JavaScript.</p></div>'
    )
    for child in node.children:
        if isinstance(child, nodes.paragraph) and "nb-sim-caption" in child["classes"]:
            self.body.append("<figcaption>")
            for grandchild in child.children:
                grandchild.walkabout(self)
            self.body.append("</figcaption>")
    static = node.children[-1]
    if static.children:
        self.body.append('<details class="nb-sim-static-html"><summary>The same run in the '
                         "Python engine</summary>")
        for child in static.children:
            child.walkabout(self)
        self.body.append("</details>")
    self.body.append("</figure>\n")
    raise nodes.SkipNode


# -- LaTeX and others ----------------------------------------------------------------------------

def visit_simulator_latex(self, node: simulator) -> None:
    from sphinx.util.texescape import escape

    self.body.append(f"\n\\begin{{nbsim}}{{{escape(node['title'])}}}\n")
    for child in node.children:
        child.walkabout(self)
    base = self.config.nanobook_web_url or self.config.html_baseurl
    if base:
        url = base.rstrip("/") + f"/{node['doc']}.html#{node['ids'][0]}"
        uri = self.encode_uri(url)
        link = rf"\sphinxhref{{{uri}}}{{\sphinxnolinkurl{{{uri}}}}}"
        where = rf"Interactive version: {link}"
    else:
        where = "Interactive version: this page of the web edition of the book (make html)."
    self.body.append(f"\n\\nbsimlink{{{where}}}\n\\end{{nbsim}}\n")
    raise nodes.SkipNode


def visit_pass(self, node) -> None:
    pass


def depart_pass(self, node) -> None:
    pass


def add_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is None:
        return
    used = {n["widget"] for n in doctree.findall(simulator)}
    if not used:
        return
    app.add_js_file("sim/loader.js", type="module")
    app.add_css_file("sim/kit/kit.css")
    widgets = registry()
    for name in sorted(used):
        for css in widgets[name].css:
            app.add_css_file(css)


def copy_static_files(app: Sphinx, exception: Exception | None) -> None:
    """Copy the files the widgets' views fetch (``Widget.static_files``) into ``_static/``."""
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    for widget in registry().values():
        for target, source in (widget.static_files() if widget.static_files else {}).items():
            destination = static / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.latex_style")
    app.setup_extension("nanobook.engine_source")
    app.add_config_value("nanobook_web_url", "", "env", types=[str])
    app.add_node(simulator, html=(visit_simulator_html, None), latex=(visit_simulator_latex, None),
                 text=(visit_pass, depart_pass), man=(visit_pass, depart_pass),
                 texinfo=(visit_pass, depart_pass))
    app.add_directive("simulator", SimulatorDirective)
    app.connect("html-page-context", add_scripts)
    app.connect("build-finished", copy_static_files)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

