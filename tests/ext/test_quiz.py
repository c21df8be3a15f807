"""Quizzes: HTML buttons and data, the PDF's lettered options and answer key, validation."""

from __future__ import annotations

import re

import pytest

from tests.ext.conftest import assert_snapshot, fragment, latex, messages_of, page, warnings_of


@pytest.mark.sphinx("html", testroot="quiz", freshenv=True)
def test_html_quiz(app):
    app.build()
    assert warnings_of(app) == ""
    html = page(app)
    quiz = fragment(html, "section", "nb-quiz")
    assert_snapshot("quiz.html", quiz)
    assert 'data-doc="index"' in quiz and 'data-questions="3"' in quiz
    # Real buttons, in source order (the script shuffles them), each with its feedback.
    buttons = re.findall(r'<button type="button" class="nb-option" aria-pressed="false" '
                         r'data-correct="(true|false)" data-position="(\d)">', quiz)
    assert buttons == [("false", "0"), ("true", "1"), ("false", "2"), ("true", "0"), ("false", "1"),
                       ("true", "2"), ("false", "0"), ("false", "1"), ("false", "2"), ("true", "3")]
    assert quiz.count('<div class="nb-feedback" hidden>') == 10
    assert quiz.count('role="status" aria-live="polite"') == 4  # one per question, one for the score
    assert 'data-multi="true"' in quiz and quiz.count('class="nb-check-answer"') == 1
    assert 'src="_static/nanobook/quiz.js' in html
    # The landing page (root document) gets the score script.
    assert 'src="_static/nanobook/quiz-score.js' in html


@pytest.mark.sphinx("latex", testroot="quiz", freshenv=True)
def test_latex_quiz_and_answer_key(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    quiz = tex[tex.index(r"\begin{nbquiz}"): tex.index(r"\end{nbquiz}")]
    assert_snapshot("quiz.tex", quiz)
    assert r"\pageref{nbkey-quiz-index}" in quiz
    assert re.findall(r"\\item\[\((\w)\)\]", quiz) == list("ABC") + list("ABC") + list("ABCD")
    assert "feedback" not in quiz and "Right:" not in quiz  # the answers are in the key only
    key = tex[tex.index(r"\label{nbkey-quiz-index}"):]
    assert "Chapter 4: PagedAttention" in key
    assert re.findall(r"Answer: ([A-D, ]+)\.", key) == ["B", "A, C", "D"]
    assert key.count("correct: }") == 4 and key.count("wrong: }") == 6
    assert r"\sphinxcode{\sphinxupquote{take}} pops from the left" in key


@pytest.mark.sphinx("text", testroot="quiz", freshenv=True)
def test_other_builders_print_questions_and_options(app):
    app.build()
    text = (app.outdir / "index.txt").read_text()
    assert "(B) The one at the head of the free list" in text


@pytest.mark.sphinx("html", testroot="quiz-errors", freshenv=True)
def test_invalid_quizzes_fail_the_build(app):
    app.build()
    messages = messages_of(app)

    def message(doc: str) -> str:
        found = [m for m in messages if f"{doc}.md" in m]
        assert len(found) == 1, (doc, messages)
        return found[0]

    assert "option 'That one' has no feedback" in message("no-feedback")
    assert "no option is marked correct" in message("no-correct")
    assert "declares 3 question(s) and has 1" in message("count")
    assert "[nanobook.quiz_count]" in message("count")
    assert "a question must be inside a {quiz} directive" in message("outside")
    assert "give the number of questions with :questions: N" in message("undeclared")
    assert "a question needs at least two options" in message("one-option")
    assert all("[nanobook.quiz_" in m for m in messages)
    assert app.statuscode == 1


@pytest.mark.sphinx("html", testroot="quiz-balance", freshenv=True)
def test_correct_answers_must_be_spread_over_positions(app):
    app.build()
    (message,) = messages_of(app)
    # The balance page by page, and where the next correct answer should go: the index's
    # questions have two options, so B is the least used of the positions every question has.
    assert message.split("index.md:", 1)[1] == (
        "7: ERROR: quizzes: option A holds 3 of the 3 correct answers (100%, more than 40%); "
        "move at least 2 of them to other positions.\n"
        "Correct answers by position, page by page (book order):\n"
        "  index: A 2, B 0, C 0 (next correct answer: B)\n"
        "  second: A 1, B 0, C 0 (next correct answer: B)\n"
        "  whole book: A 3, B 0, C 0\n"
        "The next correct answer should take position B: it has the fewest correct answers (0) "
        "of A to B, the positions every question has. [nanobook.quiz_balance]")
    assert app.statuscode == 1


@pytest.mark.sphinx("html", testroot="quiz-balance-pages", freshenv=True)
def test_each_page_gets_its_own_next_position(app):
    app.build()
    (message,) = messages_of(app)
    # A holds 3 of 6 (50 %); B, C and D hold one each, so the book's next answer goes to B,
    # but p1 already has its B: its next one goes to C.
    assert message.split("p1.md:", 1)[1] == (
        "3: ERROR: quizzes: option A holds 3 of the 6 correct answers (50%, more than 40%); "
        "move at least 1 of them to other positions.\n"
        "Correct answers by position, page by page (book order):\n"
        "  p1: A 2, B 1, C 0, D 0 (next correct answer: C)\n"
        "  p2: A 1, B 0, C 1, D 1 (next correct answer: B)\n"
        "  whole book: A 3, B 1, C 1, D 1\n"
        "The next correct answer should take position B: it has the fewest correct answers (1) "
        "of A to D, the positions every question has. [nanobook.quiz_balance]")


@pytest.mark.sphinx("html", testroot="quiz-balance", freshenv=True,
                    confoverrides={"nanobook_quiz_max_position_share": 1.0})
def test_the_allowed_share_is_a_setting(app):
    app.build()
    assert warnings_of(app) == ""
