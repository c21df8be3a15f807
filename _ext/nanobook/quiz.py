"""Quizzes: questions with options, the correct ones marked, feedback for every option.

Syntax (MyST)::

    ::::{quiz}
    :questions: 3

    :::{question} Which free block does the allocator hand out first?
    - [ ] The one with the highest number
    : No: numbers say nothing about age; the free list is a queue.
    - [x] The one at the head of the free list
    : Right: ``allocate`` takes from the left and ``free`` appends on the right.
    :::

    (two more questions)
    ::::

A question's text is its argument, optionally followed by more MyST (a code
block, say) before the first option. Each option is a line ``- [x] text``
(correct) or ``- [ ] text`` and is followed by its feedback after ``: ``
(indented lines continue it). More than one option may be correct; the reader
then picks all of them and presses "Check".

Checked when the page is read (each an error): every option has feedback, every
question has at least two options, at most ten (they are lettered A to J), and at
least one correct, option text is one paragraph, the quiz has exactly the number
of questions it declares in ``:questions:``, and its ``:name:``, when it has one,
is a plain name (see ``nanobook.names``). Checked over the whole book: no answer
position (first option, second option, ...) holds more than
``nanobook_quiz_max_position_share`` (40 %) of all correct answers, counted in
source order.

HTML: the options are real buttons, shuffled on every load; the feedback of the
chosen option is announced in a live region and then every option's feedback is
shown; "Try again" resets and reshuffles; the score per page is kept in the
browser (``localStorage``) and shown on the landing page's chapter cards
(``_static/nanobook/quiz.js``, ``quiz-score.js``). LaTeX: the questions with
lettered options in the chapter; the answers and all feedback in the answer key
(``{quiz-answer-key}``), which prints every quiz that comes before it in the same
document: in the PDF, the whole book.
"""

from __future__ import annotations

import html
import math
import re

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_id

from .entries import EntrySyntaxError, parse_entries
from .html_attr import attr
from .names import name_problem
from .warnings import BookWarning

_OPTION = re.compile(r"^- \[( |x|X)\] (.+)$")
LETTERS = "ABCDEFGHIJ"  # one per option: a question has at most this many


class quiz(nodes.General, nodes.Element):
    """A quiz: a title and its questions."""


class quiz_question(nodes.General, nodes.Element):
    """One question: stem, options."""


class quiz_stem(nodes.General, nodes.Element):
    pass


class quiz_option(nodes.General, nodes.Element):
    """One option; ``correct`` and ``position`` (0-based, source order). Children: text, feedback."""


class quiz_option_text(nodes.General, nodes.Element):
    pass


class quiz_feedback(nodes.General, nodes.Element):
    pass


class quiz_answer_key(nodes.General, nodes.Element):
    """Placeholder: replaced by the answers of the quizzes before it in the same document."""


# -- directives --------------------------------------------------------------------------------

class QuizDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"questions": directives.positive_int, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        if "questions" not in self.options:
            BookWarning.QUIZ_SYNTAX.error(
                f"quiz in {self.env.docname!r}: give the number of questions with :questions: N",
                env=self.env, location=self.get_location())
            return []
        if "name" in self.options and (problem := name_problem(self.options["name"])):
            BookWarning.QUIZ_SYNTAX.error(f"quiz in {self.env.docname!r}: {problem}",
                                          env=self.env, location=self.get_location())
            return []
        title = self.arguments[0] if self.arguments else "Check your understanding"
        quiz_id = self.options.get("name") or make_id(self.env, self.state.document, "quiz",
                                                       self.env.docname.rsplit("/", 1)[-1])
        node = quiz(title=title, declared=self.options["questions"], doc=self.env.docname,
                    ids=[quiz_id])
        self.state.document.ids[quiz_id] = node
        self.set_source_info(node)
        self.env.temp_data["nanobook_quiz"] = node
        self.env.temp_data["nanobook_questions_seen"] = 0
        try:
            node += self.parse_content_to_nodes()
        finally:
            self.env.temp_data.pop("nanobook_quiz", None)
        questions = [q for q in node.children if isinstance(q, quiz_question)]
        strays = [c for c in node.children if not isinstance(c, quiz_question)
                  and not isinstance(c, nodes.comment)]
        if strays:
            BookWarning.QUIZ_SYNTAX.error(
                f"quiz in {self.env.docname!r}: only question directives may be inside a quiz, "
                f"found {strays[0].tagname}", env=self.env, location=self.get_location())
        seen = self.env.temp_data.pop("nanobook_questions_seen", 0)
        if seen != len(questions):
            return []  # a question was malformed and has been reported; no second error
        if len(questions) != node["declared"]:
            BookWarning.QUIZ_COUNT.error(
                f"quiz in {self.env.docname!r} declares {node['declared']} question(s) and has "
                f"{len(questions)}", env=self.env, location=self.get_location())
            return []
        for number, question in enumerate(questions, start=1):
            question["number"] = number
            question["ids"] = [f"{attr(quiz_id)}-q{number}"]
        stored = getattr(self.env, "nanobook_quizzes", None)
        if stored is None:
            stored = self.env.nanobook_quizzes = {}
        stored.setdefault(self.env.docname, []).append({
            "id": quiz_id,
            "questions": [[o["position"] for o in q.findall(quiz_option) if o["correct"]]
                          for q in questions],
            "sizes": [len(list(q.findall(quiz_option))) for q in questions],
            "line": self.lineno,
        })
        return [node]


class QuestionDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def fail(self, message: str) -> list[nodes.Node]:
        BookWarning.QUIZ_SYNTAX.error(f"question in {self.env.docname!r}: {message}",
                                      env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        if "nanobook_quiz" not in self.env.temp_data:
            return self.fail("a question must be inside a {quiz} directive")
        self.env.temp_data["nanobook_questions_seen"] += 1
        number = self.env.temp_data["nanobook_questions_seen"]
        lines = list(self.content)
        first = next((i for i, line in enumerate(lines) if _OPTION.match(line)), None)
        if first is None:
            return self.fail("no options; write each as '- [x] correct' or '- [ ] wrong'")
        node = quiz_question()
        self.set_source_info(node)
        stem = quiz_stem()
        if self.arguments:
            inline, messages = self.parse_inline(self.arguments[0], lineno=self.lineno)
            stem += nodes.paragraph("", "", *inline)
            stem += messages
        if any(line.strip() for line in lines[:first]):
            stem += self.parse_text_to_nodes(self.content[:first])
        if not stem.children:
            return self.fail("the question has no text")
        node += stem
        try:
            entries = parse_entries(self.content, start=first)
        except EntrySyntaxError as error:
            return self.fail(str(error))
        if len(entries) > len(LETTERS):
            text = self.arguments[0] if self.arguments else lines[0].strip()
            return self.fail(f"question {number} ({text!r}) has {len(entries)} options; a question "
                             f"may have at most {len(LETTERS)}, lettered {LETTERS[0]} to "
                             f"{LETTERS[-1]}")
        for position, entry in enumerate(entries):
            match = _OPTION.match(entry.head)
            if not match:
                return self.fail(f"{entry.head!r} is not an option ('- [x] text' or '- [ ] text')")
            text = match.group(2).strip()
            if not entry.has_body:
                return self.fail(f"option {text!r} has no feedback; write it on the next line "
                                 "after ': '")
            option = quiz_option(correct=match.group(1) in "xX", position=position)
            inline, messages = self.parse_inline(text, lineno=self.content_offset + entry.offset + 1)
            option += quiz_option_text("", *inline)
            option += messages
            feedback = quiz_feedback()
            feedback += self.parse_text_to_nodes(entry.body)
            option += feedback
            node += option
        options = list(node.findall(quiz_option))
        if len(options) < 2:
            return self.fail("a question needs at least two options")
        correct = [o for o in options if o["correct"]]
        if not correct:
            return self.fail("no option is marked correct ('- [x] ...')")
        node["multi"] = len(correct) > 1
        return [node]


class AnswerKeyDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        node = quiz_answer_key()
        self.set_source_info(node)
        return [node]


# -- the answer key ----------------------------------------------------------------------------

def chapter_label(config, docname: str, fallback: str) -> str:
    for chapter in config.nanobook_chapters:
        if chapter.get("doc") == docname:
            return f"Chapter {int(chapter['number'])}: {chapter['title']}"
    return fallback


class BuildAnswerKey(SphinxPostTransform):
    """Fill each answer key with the quizzes before it (before references are resolved)."""

    default_priority = 5

    def run(self, **kwargs) -> None:
        for key in list(self.document.findall(quiz_answer_key)):
            content: list[nodes.Node] = []
            for q in self.document.findall(quiz):
                if _comes_before(self.document, q, key):
                    content += self._answers(q)
            if not content:
                content = [nodes.paragraph("", "No quiz comes before this answer key.")]
            container = nodes.container(classes=["nb-answer-key"])
            container += content
            key.replace_self(container)

    def _answers(self, q: quiz) -> list[nodes.Node]:
        label = f"nbkey-{q['ids'][0]}"
        q["answer_label"] = label
        title = self.env.titles.get(q["doc"])
        heading = chapter_label(self.config, q["doc"], title.astext() if title else q["title"])
        out: list[nodes.Node] = [
            nodes.target("", "", ids=[label]),
            nodes.raw("", rf"\phantomsection\label{{{label}}}", format="latex"),
            nodes.rubric("", heading, classes=["nb-answer-key-title"]),
        ]
        items = nodes.enumerated_list(enumtype="arabic", prefix="", suffix=".",
                                      classes=["nb-answer-key-questions"])
        for question in q.findall(quiz_question):
            options = list(question.findall(quiz_option))
            letters = ", ".join(LETTERS[o["position"]] for o in options if o["correct"])
            item = nodes.list_item()
            para = nodes.paragraph()
            para += nodes.strong("", f"Answer: {letters}. ")
            para += nodes.Text("Question: ")
            first = question.next_node(quiz_stem).children[0]
            if isinstance(first, nodes.paragraph):
                para += [c.deepcopy() for c in first.children]
            else:
                para += nodes.Text(first.astext())
            item += para
            feedback_list = nodes.bullet_list(classes=["nb-answer-key-feedback"])
            for option in options:
                entry = nodes.list_item()
                head = nodes.paragraph()
                mark = "correct" if option["correct"] else "wrong"
                head += nodes.strong("", f"({LETTERS[option['position']]}) {mark}: ")
                head += [c.deepcopy() for c in option.next_node(quiz_option_text).children]
                entry += head
                entry += [c.deepcopy() for c in option.next_node(quiz_feedback).children]
                feedback_list += entry
            item += feedback_list
            items += item
        out.append(items)
        return out


def _comes_before(root: nodes.Node, a: nodes.Node, b: nodes.Node) -> bool:
    for node in root.findall():
        if node is a:
            return True
        if node is b:
            return False
    return False


# -- the book-wide check -----------------------------------------------------------------------

def check_balance(app: Sphinx, env) -> None:
    """No answer position may hold more than the allowed share of all correct answers."""
    quizzes = getattr(env, "nanobook_quizzes", {})
    order = [c["doc"] for c in app.config.nanobook_chapters if c.get("doc") in quizzes]
    order += sorted(set(quizzes) - set(order))
    pages = {doc: _position_counts(quizzes[doc]) for doc in order}
    sizes = [size for doc in order for q in quizzes[doc] for size in q.get("sizes", [])]
    message = balance_message(pages, sizes, app.config.nanobook_quiz_max_position_share)
    if message:
        docname = order[0]
        BookWarning.QUIZ_BALANCE.error(message, env=env, docname=docname,
                                       location=(docname, quizzes[docname][0]["line"]))


def balance_message(pages: dict[str, dict[int, int]], sizes: list[int],
                    limit: float) -> str | None:
    """Why the correct answers are out of balance, or None when no position holds more than
    ``limit`` of them.

    ``pages`` maps each page, in book order, to its correct answers by position (0 for the
    first option); ``sizes`` are the numbers of options of every question. The message gives
    the balance page by page, how many answers must move, and the position the next correct
    answer should take: the one with the fewest correct answers among those every question
    has (on each page, ties go to the position that page uses least).
    """
    counts = _add(pages.values())
    total = sum(counts.values())
    if not total:
        return None
    worst = max(counts, key=lambda p: counts[p])
    share = counts[worst] / total
    if share <= limit:
        return None
    width = max([*sizes, max(counts) + 1])
    shared = min(sizes) if sizes else width  # positions every question has
    best = min(range(shared), key=lambda p: (counts.get(p, 0), p))
    moves = math.ceil(counts[worst] - limit * total - 1e-9)

    def spread(by_position: dict[int, int]) -> str:
        return ", ".join(f"{LETTERS[p]} {by_position.get(p, 0)}" for p in range(width))

    def next_for(page: dict[int, int]) -> str:
        return LETTERS[min(range(shared), key=lambda p: (counts.get(p, 0), page.get(p, 0), p))]

    lines = [f"  {doc}: {spread(page)} (next correct answer: {next_for(page)})"
             for doc, page in pages.items()]
    return (f"quizzes: option {LETTERS[worst]} holds {counts[worst]} of the {total} correct "
            f"answers ({share:.0%}, more than {limit:.0%}); move at least {moves} of them to "
            "other positions.\nCorrect answers by position, page by page (book order):\n"
            + "\n".join(lines) + f"\n  whole book: {spread(counts)}\n"
            f"The next correct answer should take position {LETTERS[best]}: it has the fewest "
            f"correct answers ({counts.get(best, 0)}) of {LETTERS[0]} to "
            f"{LETTERS[shared - 1]}, the positions every question has.")


def _position_counts(page_quizzes: list[dict]) -> dict[int, int]:
    """Correct answers by position (0 for the first option) over a page's quizzes."""
    counts: dict[int, int] = {}
    for q in page_quizzes:
        for positions in q["questions"]:
            for position in positions:
                counts[position] = counts.get(position, 0) + 1
    return counts


def _add(many) -> dict[int, int]:
    total: dict[int, int] = {}
    for counts in many:
        for position, n in counts.items():
            total[position] = total.get(position, 0) + n
    return total


def purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "nanobook_quizzes", {}).pop(docname, None)


def merge(app: Sphinx, env, docnames, other) -> None:
    mine = getattr(env, "nanobook_quizzes", None)
    if mine is None:
        mine = env.nanobook_quizzes = {}
    for docname, value in getattr(other, "nanobook_quizzes", {}).items():
        if docname in docnames:
            mine[docname] = value


# -- HTML --------------------------------------------------------------------------------------

def visit_quiz_html(self, node: quiz) -> None:
    quiz_id = node["ids"][0]
    self.body.append(
        f'<section class="nb-quiz" id="{attr(quiz_id)}" data-doc="{attr(node["doc"])}" '
        f'data-quiz="{attr(quiz_id)}" data-questions="{attr(node["declared"])}" '
        f'aria-labelledby="{attr(quiz_id)}-title">'
        f'<p class="nb-quiz-title" id="{attr(quiz_id)}-title">{html.escape(node["title"])}</p>'
        f'<noscript><p class="nb-quiz-noscript">This quiz needs JavaScript; the answers are in the '
        f"PDF's answer key.</p></noscript>"
        f'<ol class="nb-questions">'
    )


def depart_quiz_html(self, node: quiz) -> None:
    quiz_id = node["ids"][0]
    self.body.append(
        f'</ol><div class="nb-quiz-footer"><p class="nb-quiz-summary" id="{attr(quiz_id)}-summary" '
        f'role="status" aria-live="polite"></p><button type="button" class="nb-quiz-retry">'
        f"Try again</button></div></section>\n"
    )


def visit_question_html(self, node: quiz_question) -> None:
    qid = node["ids"][0]
    hint = "Choose every correct answer, then press Check." if node["multi"] else "Choose one answer."
    self.body.append(
        f'<li class="nb-question" id="{attr(qid)}" data-multi="{attr(str(node["multi"]).lower())}">'
        f'<div class="nb-question-stem" id="{attr(qid)}-stem">'
    )
    for child in node.children[0].children:
        child.walkabout(self)
    self.body.append(
        f'</div><p class="nb-question-hint" id="{attr(qid)}-hint">{hint}</p>'
        f'<ul class="nb-options" aria-labelledby="{attr(qid)}-stem" aria-describedby="{attr(qid)}-hint">'
    )
    for option in node.children[1:]:
        option.walkabout(self)
    self.body.append("</ul>")
    if node["multi"]:
        self.body.append('<button type="button" class="nb-check-answer">Check</button>')
    self.body.append(f'<p class="nb-question-status" id="{attr(qid)}-status" role="status" '
                     f'aria-live="polite"></p></li>\n')
    raise nodes.SkipNode


def visit_option_html(self, node: quiz_option) -> None:
    letter = LETTERS[node["position"]]
    self.body.append(
        f'<li class="nb-option-item"><button type="button" class="nb-option" aria-pressed="false" '
        f'data-correct="{attr(str(node["correct"]).lower())}" '
        f'data-position="{attr(node["position"])}">'
        f'<span class="nb-option-letter" aria-hidden="true">{letter}</span>'
        f'<span class="nb-option-text">'
    )
    for child in node.next_node(quiz_option_text).children:
        child.walkabout(self)
    self.body.append('</span><span class="nb-option-mark"></span></button>'
                     '<div class="nb-feedback" hidden>')
    for child in node.next_node(quiz_feedback).children:
        child.walkabout(self)
    self.body.append("</div></li>")
    raise nodes.SkipNode


# -- LaTeX -------------------------------------------------------------------------------------

def visit_quiz_latex(self, node: quiz) -> None:
    from sphinx.util.texescape import escape

    where = ""
    if node.get("answer_label"):
        where = rf"Answers and explanations: page~\pageref{{{node['answer_label']}}}."
    self.body.append(f"\n\\begin{{nbquiz}}{{{escape(node['title'])}}}{{{where}}}\n"
                     "\\begin{enumerate}\n")


def depart_quiz_latex(self, node: quiz) -> None:
    self.body.append("\\end{enumerate}\n\\end{nbquiz}\n")


def visit_question_latex(self, node: quiz_question) -> None:
    self.body.append("\\item ")
    stem = node.children[0]
    for child in stem.children:
        child.walkabout(self)
    self.body.append("\n\\begin{nboptions}\n")
    for option in node.children[1:]:
        self.body.append(f"\\item[({LETTERS[option['position']]})] ")
        for child in option.next_node(quiz_option_text).children:
            child.walkabout(self)
        self.body.append("\n")
    self.body.append("\\end{nboptions}\n")
    raise nodes.SkipNode


def visit_skip(self, node) -> None:
    raise nodes.SkipNode


# -- text and others: the questions, options in source order -----------------------------------

def visit_quiz_text(self, node) -> None:
    self.new_state(0)
    self.add_text(node["title"])
    self.end_state()


def depart_pass(self, node) -> None:
    pass


def visit_pass(self, node) -> None:
    pass


def visit_option_text(self, node: quiz_option) -> None:
    self.new_state(2)
    self.add_text(f"({LETTERS[node['position']]}) {node.next_node(quiz_option_text).astext()}")
    self.end_state()
    raise nodes.SkipNode


# -- assets ------------------------------------------------------------------------------------

def add_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is not None and any(True for _ in doctree.findall(quiz)):
        app.add_js_file("nanobook/quiz.js", type="module")
    if pagename == app.config.root_doc:
        app.add_js_file("nanobook/quiz-score.js", type="module")


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.latex_style")
    if "nanobook_chapters" not in app.config:
        app.add_config_value("nanobook_chapters", [], "env", types=[list, tuple])
    app.add_config_value("nanobook_quiz_max_position_share", 0.4, "env", types=[float, int])
    app.add_node(quiz, html=(visit_quiz_html, depart_quiz_html),
                 latex=(visit_quiz_latex, depart_quiz_latex), text=(visit_quiz_text, depart_pass))
    app.add_node(quiz_question, html=(visit_question_html, None),
                 latex=(visit_question_latex, None), text=(visit_pass, depart_pass))
    app.add_node(quiz_stem, html=(visit_pass, depart_pass), latex=(visit_pass, depart_pass),
                 text=(visit_pass, depart_pass))
    app.add_node(quiz_option, html=(visit_option_html, None), latex=(visit_skip, None),
                 text=(visit_option_text, None))
    app.add_node(quiz_option_text, html=(visit_pass, depart_pass), latex=(visit_pass, depart_pass),
                 text=(visit_pass, depart_pass))
    app.add_node(quiz_feedback, html=(visit_pass, depart_pass), latex=(visit_skip, None),
                 text=(visit_skip, None))
    app.add_node(quiz_answer_key)
    app.add_directive("quiz", QuizDirective)
    app.add_directive("question", QuestionDirective)
    app.add_directive("quiz-answer-key", AnswerKeyDirective)
    app.add_post_transform(BuildAnswerKey)
    app.connect("env-check-consistency", check_balance)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("html-page-context", add_scripts)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

