"""The book's interactive parts in headless Chromium: a quiz answered by keyboard, the score on
the landing page, the paged-allocator simulator, reduced motion; no console errors.

They run on a small book (tests/ext/roots/test-site) with the real theme and the real scripts,
because the landing page only shows scores for chapters, and the real book's chapters may
not exist yet. The real book's pages (the guide's quiz and simulator included) are loaded by
test_pages.py.
"""

from __future__ import annotations

import shutil

import pytest

from tests.browser.conftest import build_site, serve, visit
from tests.conftest import ROOT

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    srcdir = tmp_path_factory.mktemp("site") / "src"
    shutil.copytree(ROOT / "tests" / "ext" / "roots" / "test-site", srcdir)
    with serve(build_site(srcdir)) as base:
        yield base


def focused(page) -> dict:
    return page.evaluate("""() => ({
        correct: document.activeElement.dataset.correct,
        text: document.activeElement.textContent,
        tag: document.activeElement.tagName})""")


def tab_to(page, predicate, limit: int = 12) -> None:
    for _ in range(limit):
        if predicate(focused(page)):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"no focusable element matched; last was {focused(page)}")


def test_quiz_by_keyboard_gives_feedback_and_the_score_reaches_the_landing_page(small_site, browser):
    context, page, problems = visit(browser, f"{small_site}/01-memory.html")
    questions = page.locator("li.nb-question")
    # Question 1: Tab to the correct option and press Enter.
    questions.nth(0).locator("button.nb-option").first.focus()
    tab_to(page, lambda f: f["correct"] == "true")
    page.keyboard.press("Enter")
    status = questions.nth(0).locator(".nb-question-status")
    assert status.get_attribute("role") == "status"
    assert status.text_content().startswith("Correct. Right.")
    assert questions.nth(0).locator(".nb-feedback:visible").count() == 3  # every option explained
    # Question 2 (two correct options): Space on each, then Tab to "Check" and press Enter.
    questions.nth(1).locator("button.nb-option").first.focus()
    for _ in range(2):
        tab_to(page, lambda f: f["correct"] == "true" and "pressed" not in f)
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
    tab_to(page, lambda f: f["text"] == "Check")
    page.keyboard.press("Enter")
    assert questions.nth(1).locator(".nb-question-status").text_content().startswith("Correct.")
    # Question 3: a wrong answer; the feedback names the right one by its (shuffled) letter.
    questions.nth(2).locator("button.nb-option").first.focus()
    tab_to(page, lambda f: f["correct"] == "false")
    page.keyboard.press("Enter")
    text = questions.nth(2).locator(".nb-question-status").text_content()
    assert text.startswith("Not quite: the correct answer is ") and text.endswith("No.")
    assert page.locator(".nb-quiz-summary").text_content() == "Score: 2 of 3."
    # Answered questions take no second answer.
    questions.nth(2).locator("button.nb-option[data-correct='true']").focus()
    page.keyboard.press("Enter")
    assert page.locator(".nb-quiz-summary").text_content() == "Score: 2 of 3."
    # The landing page shows the score on the chapter's card, and nothing on the others.
    page.goto(f"{small_site}/index.html", wait_until="networkidle")
    assert page.locator("#chapter-card-01 .chapter-card-quiz").text_content() == "Quiz score: 2 of 3"
    assert page.locator("#chapter-card-02 .chapter-card-quiz").count() == 0
    # Try again clears the answers.
    page.goto(f"{small_site}/01-memory.html", wait_until="networkidle")
    page.locator("button.nb-quiz-retry").click()
    assert page.locator("li.nb-question[data-answered]").count() == 0
    assert page.locator(".nb-feedback:visible").count() == 0
    assert problems == []
    context.close()


def test_options_are_shuffled_on_each_load(small_site, browser):
    context, page, problems = visit(browser, f"{small_site}/01-memory.html")
    orders = set()
    for _ in range(8):
        page.reload(wait_until="networkidle")
        orders.add(tuple(page.locator("li.nb-question").nth(0).locator(".nb-option-text").all_text_contents()))
        letters = page.locator("li.nb-question").nth(0).locator(".nb-option-letter").all_text_contents()
        assert letters == ["A", "B", "C"]  # letters follow the shown order
    assert len(orders) > 1
    assert problems == []
    context.close()


def test_the_allocator_responds_to_input(small_site, browser):
    context, page, problems = visit(browser, f"{small_site}/01-memory.html")
    sim = page.locator(".nb-sim-mount")
    assert sim.get_attribute("data-mounted") == "true"
    status = sim.locator(".nb-sim-status")
    # Keyboard only: type a prompt length and the most it may generate, then "Add sequence".
    prompt = sim.get_by_label("Prompt tokens")
    prompt.fill("")
    prompt.focus()
    page.keyboard.type("5")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert status.text_content() == ("Added A: 5 prompt tokens, room for 9. The paged pool "
                                     "gave it blocks 0, 1, 2. The contiguous arena reserved "
                                     "slots 0–8.")
    assert sim.locator("li.nb-pa-block[data-seq='A']").count() == 3
    assert sim.locator(".nb-pa-tables li").first.text_content() == "A (5 tokens): 0 1 2"
    assert sim.locator(".nb-pa-regions li").first.text_content() == "A: slots 0–8, 5 of 9 hold tokens"
    sim.get_by_label("Grow by").fill("1")
    sim.get_by_role("button", name="Grow").click()
    assert status.text_content() == ("A grew by 1 token to 6: the paged pool needed no new block; "
                                     "its contiguous region had room already.")
    sim.get_by_label("Grow by").fill("4")
    sim.get_by_role("button", name="Grow").click()
    assert status.text_content().startswith("A may hold at most 9 tokens")
    sim.get_by_role("button", name="Finish").click()
    assert sim.locator("ol.nb-pa-free li").all_text_contents()[:4] == ["0", "1", "2", "3"]
    assert sim.locator(".nb-pa-regions li").all_text_contents() == [
        "No sequences yet.", "Free holes: 0–15 (16 slots)"]
    # Too large a prompt is refused by both and changes nothing.
    sim.get_by_label("Prompt tokens").fill("17")
    sim.get_by_role("button", name="Add sequence").click()
    assert status.text_content() == (
        "Refused B: 17 prompt tokens, room for 21. The paged pool refused it: 17 prompt tokens "
        "need 9 blocks, and 8 blocks are free. The scheduler would have to preempt a "
        "sequence to make room (chapter 5). The contiguous arena refused it: it needs 21 slots "
        "in a row and 16 slots are free.")
    assert sim.locator("li.nb-pa-block[data-seq]").count() == 0
    # What a reader types is shown as text: a non-number is refused with a message.
    sim.get_by_label("Prompt tokens").evaluate("e => { e.type = 'text'; e.value = '<b>x</b>'; }")
    sim.get_by_role("button", name="Add sequence").click()
    assert status.text_content().startswith("Enter a whole number of tokens")
    assert sim.locator("b").count() == 0
    # The example steps through the scenario the PDF prints (paged_allocator.example).
    for _ in range(3):
        sim.locator("button.nb-pa-example").click()
    assert status.text_content() == ("A grew by 2 tokens to 5: the paged pool gave it block 4; "
                                     "its contiguous region had room already.")
    for _ in range(3):
        sim.locator("button.nb-pa-example").click()
    # Step 6: D fits in the free slots of the arena but in none of its holes.
    assert status.text_content() == (
        "Added D: 3 prompt tokens, room for 5. The paged pool gave it blocks 2, 3. The "
        "contiguous arena refused it: 6 slots are free, but not next to each other; the largest "
        "hole has 4.")
    assert problems == []
    context.close()


def test_reduced_motion_turns_animations_off(small_site, browser):
    context, page, problems = visit(browser, f"{small_site}/01-memory.html", reduced_motion="reduce")
    duration = page.locator("li.nb-pa-block").first.evaluate(
        "e => getComputedStyle(e).transitionDuration")
    assert set(duration.replace(" ", "").split(",")) == {"0s"}
    assert problems == []
    context.close()


def test_focusing_a_slice_note_highlights_its_line(site, browser):
    base, _ = site
    context, page, problems = visit(browser, f"{base}/how-this-book-is-built.html")
    figure = page.locator("figure.nb-slice").first
    note = figure.locator("li.nb-note").nth(1)
    line = figure.locator(f".nb-line[data-line='{note.get_attribute('data-line')}']")
    assert "nb-active" not in (line.get_attribute("class") or "")
    note.focus()
    assert "nb-active" in line.get_attribute("class")
    assert "nb-active" in figure.locator(".nb-marker[data-note='2']").get_attribute("class")
    note.blur()
    assert "nb-active" not in line.get_attribute("class")
    # Hovering a marker in the code highlights its note.
    figure.locator(".nb-marker[data-note='1']").hover()
    assert "nb-active" in figure.locator("li.nb-note").first.get_attribute("class")
    assert problems == []
    context.close()
