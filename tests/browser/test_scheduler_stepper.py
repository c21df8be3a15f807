"""The scheduler stepper in Chromium: stepping through the traced run, adding requests by
lengths and stepping them, settings the engine would refuse, and loading the traced run back.
Every step it shows comes from the scheduler's port, which the logic test holds to the engine."""

from __future__ import annotations

import json

import pytest
from nanobook.sims.scheduler_replay import replay

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


def open_widget(widget_site, browser):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-scheduler-stepper.html")
    sim = page.locator(".nb-sim-mount")
    data = json.loads(sim.get_attribute("data-params"))
    return context, page, problems, sim, data


def press(page, sim, name, times=1):
    sim.get_by_role("button", name=name, exact=True).focus()
    for _ in range(times):
        page.keyboard.press("Enter")


def test_stepping_the_traced_run_shows_its_preemptions(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    steps = replay(data["traced"])  # the engine's scheduler on the traced run's requests
    first = next(i for i, s in enumerate(steps) if s["batch"]["preempted_seq_ids"])
    status = sim.locator("[role=status]")
    assert status.text_content() == ""
    assert sim.locator(".nb-kit-step-position").text_content() == f"0 / {len(steps)}"
    press(page, sim, "Step", first + 1)
    victim = "ABCD"[steps[first]["batch"]["preempted_seq_ids"][0]]
    free = len(steps[first]["pool"]["free_block_ids"])
    assert status.text_content().startswith(f"Step {first + 1}: ")
    assert f"preempted {victim}; waiting {victim}; {free} of 20 blocks free." in \
        status.text_content()
    assert f"Preempted: {victim} (blocks given back" in sim.locator("ul.nb-sr-batch").text_content()
    # The victim waits at the front of the waiting queue with no blocks.
    row = sim.locator("table.nb-sr-table tbody tr").nth("ABCD".index(victim))
    assert row.locator("td").nth(1).text_content() == "waiting"
    assert row.locator("code").text_content() == "0"
    assert sim.locator(".nb-ss-free").text_content() == f"{free} of 20 blocks free."
    assert problems == []
    context.close()


def test_requests_added_by_length_run_step_by_step(widget_site, browser):
    context, page, problems, sim, _ = open_widget(widget_site, browser)
    status = sim.locator("[role=status]")
    press(page, sim, "Remove all requests")
    assert status.text_content() == "All requests removed. Add one, then press Step."
    # A pool of 5 blocks of 4 tokens: two requests of 8 + 8 tokens fit alone, not together.
    sim.get_by_label("KV blocks").fill("5")
    press(page, sim, "Apply settings")
    assert status.text_content().startswith("Settings applied: 5 blocks of 4 tokens")
    for name in "AB":
        sim.get_by_label("Prompt tokens").fill("8")
        sim.get_by_label("Output tokens").fill("8")
        press(page, sim, "Add request")
        assert status.text_content().startswith(
            f"Request {name} added before step 1: 8 prompt tokens, 8 output tokens.")
    press(page, sim, "Step")
    assert status.text_content() == "Step 1: A prompt, B prompt; 1 of 5 blocks free."
    press(page, sim, "Step")
    # A takes the last free block for its ninth token; B, the newest, preempts itself.
    assert status.text_content() == "Step 2: A decode; preempted B; waiting B; 2 of 5 blocks free."
    # A request added now arrives before step 3, behind B.
    sim.get_by_label("Prompt tokens").fill("3")
    sim.get_by_label("Output tokens").fill("1")
    press(page, sim, "Add request")
    assert status.text_content().startswith("Request C added before step 3")
    queues = sim.locator("dl.nb-ss-queues dd").first.text_content()
    assert queues == "BC"
    assert problems == []
    context.close()


def test_what_the_engine_refuses_is_refused_with_its_reason(widget_site, browser):
    context, page, problems, sim, _ = open_widget(widget_site, browser)
    status = sim.locator("[role=status]")
    sim.get_by_label("KV blocks").fill("3")
    press(page, sim, "Apply settings")
    assert status.text_content() == (
        "With these settings request A could never run: prompt plus max_tokens needs up to 10 "
        "KV blocks, but the pool has 3 blocks of 4 tokens; lower max_tokens or give the KV "
        "cache more memory.")
    sim.get_by_label("KV blocks").fill("20")
    sim.get_by_label("Prompt tokens").fill("1000")
    sim.get_by_label("Output tokens").fill("1")
    press(page, sim, "Add request")
    assert status.text_content().startswith("The engine refuses this request: prompt plus "
                                            "max_tokens needs up to 250 KV blocks")
    press(page, sim, "Load the traced run")
    assert status.text_content() == "The traced run is loaded: 4 requests, 45 steps."
    assert sim.get_by_label("KV blocks").input_value() == "20"
    assert problems == []
    context.close()
