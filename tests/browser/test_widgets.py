"""Every registered widget, mounted in headless Chromium and operated by keyboard only.

The widgets come from the simulator registry (``nanobook.sims.registry()``), one page each
with its default parameters (see ``write_widget_site``), so a new widget is covered without
a line here. For each one:

* every control (button, field, checkbox, select, slider) has an accessible name, as the
  browser computes it;
* Tab reaches every enabled control and each is operated by keys alone (Enter on buttons,
  text typed into fields, Space on checkboxes, arrows on selects and sliders); focus never
  falls out of the widget, and the live region reports what happened;
* text typed into a field, ``<script>alert(1)</script>`` or ``<img src=x onerror=...>``,
  comes back as text (the kit quotes a rejected value in its message): no element is
  created from it, no script runs, no dialog opens;
* the console has no errors, and nothing moves on load, with or without reduced motion.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser

PAYLOADS = ["<script>alert(1)</script>", '<img src=x onerror="window.__nbXss = 1">']
CONTROL = re.compile(r"^\s*- '?(button|textbox|searchbox|checkbox|combobox|listbox|slider|"
                     r"spinbutton|radio|switch|link|tab|menuitem)\b(?: \"((?:[^\"\\]|\\.)*)\")?")


def widget_pages(site) -> list[tuple[str, str]]:
    base, names = site
    return [(name, f"{base}/widget-{name}.html") for name in names]


def controls_without_names(snapshot: str) -> list[str]:
    """The lines of an ARIA snapshot that are controls without an accessible name."""
    missing = []
    for line in snapshot.splitlines():
        match = CONTROL.match(line)
        if match and not (match.group(2) or "").strip():
            missing.append(line.strip())
    return missing


def enabled_controls(snapshot: str) -> set[tuple[str, str]]:
    """(role, name) of every control of an ARIA snapshot that is not disabled."""
    return {(m.group(1), m.group(2) or "") for line in snapshot.splitlines()
            if (m := CONTROL.match(line)) and "[disabled]" not in line}


def test_the_name_check_sees_a_control_without_a_name():
    assert controls_without_names('- group:\n  - button "Step"\n  - button [disabled]\n'
                                  '  - textbox "KV blocks": "9"\n  - textbox\n') == [
        "- button [disabled]", "- textbox"]


def focused(page) -> dict:
    return page.evaluate("""() => {
        const e = document.activeElement;
        const mount = e.closest('.nb-sim-mount');
        return {inside: !!mount, tag: e.tagName.toLowerCase(), type: e.type || '',
                text: (e.textContent || '').trim(), id: e.id || '', value: e.value ?? ''};
    }""")


def focused_control(page) -> tuple[str, str]:
    """(role, accessible name) of the focused element, as the browser computes them."""
    match = CONTROL.match(page.locator(":focus").aria_snapshot().splitlines()[0])
    return (match.group(1), match.group(2) or "") if match else ("", "")


def enter_widget(page) -> None:
    """Put the keyboard focus just before the widget, then Tab into it."""
    page.evaluate("""() => {
        const mount = document.querySelector('.nb-sim-mount');
        mount.setAttribute('tabindex', '-1');
        mount.focus();
        mount.removeAttribute('tabindex');
    }""")
    page.keyboard.press("Tab")


def injected(page) -> dict:
    return page.evaluate("""() => ({
        xss: window.__nbXss ?? null,
        elements: document.querySelectorAll('.nb-sim-mount script, .nb-sim-mount img').length,
    })""")


def operate(page, control: dict) -> None:
    """One keyboard action on the focused control, by its kind."""
    if control["tag"] == "button":
        page.keyboard.press("Enter")
    elif control["tag"] == "select":
        page.keyboard.press("ArrowDown")
    elif control["type"] == "checkbox":
        page.keyboard.press("Space")
    elif control["type"] == "range":
        for key in ("ArrowRight", "ArrowRight", "End", "Home", "ArrowRight"):
            page.keyboard.press(key)
    elif control["tag"] in ("input", "textarea"):
        original = control["value"]
        for payload in PAYLOADS:
            page.keyboard.press("Control+A")
            page.keyboard.type(payload)
            page.keyboard.press("Enter")
            status = page.locator(".nb-sim-mount [role=status]").first.text_content()
            assert payload in status, (control, status)  # quoted back, as text
        page.keyboard.press("Control+A")
        page.keyboard.type(original)


ROUNDS = 2  # Tab through every widget twice: the second time from the state the first left


def test_every_widget_works_by_keyboard_and_names_every_control(widget_site, browser):
    report = {}
    for name, url in widget_pages(widget_site):
        context, page, problems = visit(browser, url)
        dialogs: list[str] = []
        page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
        mount = page.locator(".nb-sim-mount")
        assert mount.get_attribute("data-mounted") == "true", name
        assert controls_without_names(mount.aria_snapshot()) == [], name
        status = mount.locator("[role=status]")
        assert status.count() >= 1, f"{name}: no live region"
        reachable = enabled_controls(mount.aria_snapshot())
        said, operated, reached = set(), [], set()
        for _ in range(ROUNDS):
            enter_widget(page)
            for _ in range(200):
                control = focused(page)
                if not control["inside"]:
                    break
                reached.add(focused_control(page))
                page.evaluate("document.activeElement.dataset.nbOperated = 'yes'")
                operate(page, control)
                operated.append((control["tag"], control["type"], control["text"]))
                assert focused(page)["inside"], f"{name}: focus left the widget after {control}"
                said.add(status.first.text_content())
                moved = page.evaluate("!document.activeElement.dataset.nbOperated")
                page.evaluate("document.querySelectorAll('[data-nb-operated]').forEach("
                              "e => delete e.dataset.nbOperated)")
                if not moved:  # the widget moved the focus on (a control disabled itself)
                    page.keyboard.press("Tab")
        assert reachable <= reached, (name, reachable - reached)  # Tab reached every control
        assert {tag for tag, _, _ in operated} >= {"button"}, (name, operated)
        assert len(said - {""}) >= 3, (name, said)  # the widget answered the keys
        assert controls_without_names(mount.aria_snapshot()) == [], name
        if problems or dialogs or injected(page) != {"xss": None, "elements": 0}:
            report[name] = {"problems": problems, "dialogs": dialogs, "injected": injected(page)}
        context.close()
    assert report == {}


def test_text_from_page_data_stays_text(widget_site, browser):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/hostile-prompts.html")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    mount = page.locator(".nb-sim-mount")
    assert mount.get_attribute("data-mounted") == "true"
    text = mount.text_content()
    assert "“<script>alert(1)</script>”" in text and "“<img src=x onerror=alert(2)>”" in text
    assert injected(page) == {"xss": None, "elements": 0}
    # The static form (no JavaScript) holds the same texts, escaped by the HTML writer.
    static = page.locator("details.nb-sim-static-html").text_content()
    assert "<script>alert(1)</script>" in static
    assert dialogs == [] and problems == []
    context.close()


@pytest.mark.parametrize("motion", ["no-preference", "reduce"])
def test_nothing_moves_on_load(widget_site, browser, motion):
    for name, url in widget_pages(widget_site):
        context, page, problems = visit(browser, url, reduced_motion=motion)
        page.wait_for_timeout(300)
        assert page.evaluate("document.querySelector('.nb-sim-mount').getAnimations"
                             "({subtree: true}).length") == 0, name
        if motion == "reduce":
            durations = page.evaluate("""() => [...document.querySelectorAll('.nb-sim *')].flatMap(
                e => [getComputedStyle(e).transitionDuration, getComputedStyle(e).animationDuration])
                .flatMap(d => d.split(',').map(x => x.trim()))""")
            assert set(durations) == {"0s"}, name
        assert problems == [], name
        context.close()


def test_widgets_take_their_colours_from_the_theme(widget_site, browser):
    """Switching the theme changes the widgets' colours without reloading them."""
    for name, url in widget_pages(widget_site):
        context, page, problems = visit(browser, url)
        colours = {}
        for mode in ("light", "dark"):
            page.evaluate(f"document.documentElement.dataset.theme = '{mode}'")
            colours[mode] = page.evaluate("""() => {
                const box = document.querySelector('.nb-sim-mount .nb-kit');
                const button = box.querySelector('button');
                return [getComputedStyle(box).color, getComputedStyle(button).backgroundColor];
            }""")
        assert colours["light"][0] != colours["dark"][0], name
        assert colours["light"][1] != colours["dark"][1], name
        assert problems == [], name
        context.close()


def test_the_kit_never_turns_a_string_into_markup_or_code(widget_site, browser):
    """``el`` sets text as text and refuses handler attributes and HTML-parsing properties."""
    base, names = widget_site
    context, page, problems = visit(browser, f"{base}/widget-{names[0]}.html")
    result = page.evaluate("""async () => {
        const { el, svgEl } = await import('./_static/sim/kit/dom.js');
        const p = el('p', { text: '<b>x</b>' }, '<i>y</i>', el('span', { text: '&amp;' }));
        const refused = [];
        for (const key of ['onclick', 'onError', 'innerHTML', 'outerHTML', 'srcdoc']) {
            try { el('div', { [key]: 'window.__nbXss = 1' }); } catch (error) { refused.push(key); }
        }
        const label = svgEl('text', { text: '<script>alert(1)</script>' });
        return { text: p.textContent, children: p.children.length, refused,
                 svg: label.textContent, svgChildren: label.children.length };
    }""")
    assert result == {"text": "<b>x</b><i>y</i>&amp;", "children": 1,
                      "refused": ["onclick", "onError", "innerHTML", "outerHTML", "srcdoc"],
                      "svg": "<script>alert(1)</script>", "svgChildren": 0}
    assert problems == []
    context.close()


def test_the_kit_colours_and_drawings(widget_site, browser):
    """Colours follow the theme (and a drawing can hear of a change); drawings are labelled."""
    base, names = widget_site
    context, page, problems = visit(browser, f"{base}/widget-{names[0]}.html")
    result = page.evaluate("""async () => {
        const { drawing, grid, scale } = await import('./_static/sim/kit/svg.js');
        const theme = await import('./_static/sim/kit/theme.js');
        const seen = [];
        const stop = theme.onThemeChange((t) => seen.push(t));
        const tick = () => new Promise((resolve) => setTimeout(resolve, 50));
        const html = document.documentElement;
        html.dataset.theme = 'dark';
        await tick();
        const dark = theme.resolve(html, '--nb-seq-0');
        html.dataset.theme = 'light';
        await tick();
        const light = theme.resolve(html, '--nb-seq-0');
        stop();
        html.dataset.theme = 'dark';
        await tick();
        const svg = drawing({ width: 10, height: 5, label: '<b>pool</b>' });
        return { seen, differ: dark !== light, seq: theme.seqColour(9),
                 scale: scale([0, 10], [0, 100])(2.5),
                 grid: grid({ count: 3, columns: 2, cell: 10, gap: 2 }),
                 title: svg.querySelector('title').textContent, role: svg.getAttribute('role'),
                 label: svg.getAttribute('aria-label') };
    }""")
    assert result == {
        "seen": ["dark", "light"], "differ": True, "seq": "var(--nb-seq-1)", "scale": 25,
        "grid": [{"x": 0, "y": 0, "row": 0, "column": 0}, {"x": 12, "y": 0, "row": 0, "column": 1},
                 {"x": 0, "y": 12, "row": 1, "column": 0}],
        "title": "<b>pool</b>", "role": "img", "label": "<b>pool</b>"}
    assert problems == []
    context.close()
