"""The scheduler replay in Chromium: stepping through the engine's run, playing and pausing it
(the kit's stepper), and running the same requests under other settings in the page."""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


def open_widget(widget_site, browser, **options):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-scheduler-replay.html", **options)
    sim = page.locator(".nb-sim-mount")
    data = json.loads(sim.get_attribute("data-params"))
    return context, page, problems, sim, data


def test_stepping_shows_each_step_of_the_engines_run(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    steps = data["trace"]["steps"]
    status = sim.locator("[role=status]")
    assert status.text_content() == ""  # nothing is announced before the reader acts
    sim.get_by_role("button", name="Step", exact=True).focus()
    page.keyboard.press("Enter")
    assert status.text_content() == (
        "Step 1: A prompt, B prompt chunk; waiting C; "
        f"{len(steps[0]['pool']['free_block_ids'])} of 9 blocks free.")
    for _ in range(2):
        page.keyboard.press("Enter")
    # Step 3 of the default run: C is preempted (see scheduler_replay.DEFAULT_PROMPTS).
    assert steps[2]["batch"]["preempted_seq_ids"] == [2]
    assert "preempted C" in status.text_content()
    batch = sim.locator("ul.nb-sr-batch").text_content()
    assert "Preempted: C (blocks given back; to the front of the waiting queue)." in batch
    # The block tables of the requests table are the trace's.
    rows = sim.locator("table.nb-sr-table tbody tr")
    running = {s["seq_id"]: s for s in steps[2]["seqs"] if s["status"] == "running"}
    assert rows.nth(0).locator("code").text_content() == " ".join(
        map(str, running[0]["block_table"]))
    # The slider jumps; Home goes back to the start.
    slider = sim.get_by_role("slider", name="Step")
    slider.focus()
    page.keyboard.press("End")
    assert status.text_content().startswith(f"Step {len(steps)}: ")
    page.keyboard.press("Home")
    assert status.text_content().startswith("Before step 1: A, B, C wait")
    assert problems == []
    context.close()


def test_play_steps_by_itself_quietly_and_escape_stops_it(widget_site, browser):
    context, page, problems, sim, _ = open_widget(widget_site, browser)
    play = sim.locator("button.nb-kit-play")  # its name changes: Play, Pause
    status = sim.locator("[role=status]")
    play.focus()
    page.keyboard.press("Enter")
    assert play.get_attribute("aria-pressed") == "true" and play.text_content() == "Pause"
    assert status.get_attribute("aria-live") == "off"  # no speech for every step
    page.wait_for_function("document.querySelector('.nb-sim-mount input[type=range]').value >= 2",
                           timeout=10000)
    page.keyboard.press("Escape")
    assert play.get_attribute("aria-pressed") == "false" and play.text_content() == "Play"
    assert status.get_attribute("aria-live") == "polite"
    reached = int(sim.locator("input[type=range]").input_value())
    assert status.text_content().startswith(f"Step {reached}: ")
    page.wait_for_timeout(1500)
    assert int(sim.locator("input[type=range]").input_value()) == reached  # stopped
    assert problems == []
    context.close()


def test_what_if_runs_the_same_requests_with_other_settings(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    status = sim.locator("[role=status]")
    engine_steps = len(data["trace"]["steps"])
    blocks = sim.get_by_label("KV blocks")
    # A pool large enough for everyone: no preemption, and fewer steps than the engine's run.
    blocks.fill("40")
    blocks.press("Enter")
    text = status.text_content()
    assert text.startswith("Run again with your settings: ") and text.endswith(
        f"(the engine's run took {engine_steps}). Step through it.")
    assert sim.locator(".nb-sr-source").text_content().startswith(
        "Your settings, run in this page by the scheduler's JavaScript port: 40 blocks of 4")
    sim.get_by_role("slider", name="Step").focus()
    page.keyboard.press("End")
    assert "preempted" not in " ".join(status.all_text_contents())
    # A pool too small for request A: refused, with the reason.
    blocks.fill("3")
    blocks.press("Enter")
    assert status.text_content() == ("With 3 blocks request A can never run: it needs up to "
                                     "5 blocks. The engine refuses such a request when it "
                                     "arrives.")
    # Chunked prefill off needs a budget of a whole sequence.
    blocks.fill("9")
    sim.get_by_label("Chunked prefill").uncheck()
    sim.get_by_role("button", name="Run with these settings").click()
    assert status.text_content().startswith("With chunked prefill off, a whole prompt must fit")
    sim.get_by_role("button", name="Back to the engine's run").click()
    assert status.text_content() == f"Back to the engine's run: {engine_steps} steps."
    assert sim.get_by_label("Chunked prefill").is_checked()
    assert problems == []
    context.close()
