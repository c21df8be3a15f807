"""Every simulator that models the engine behaves exactly as the engine does.

For each widget with a logic module, the same generated scenarios go through its
JavaScript logic (in Node) and through the Python engine (``Widget.replay``); the
state after every step must be identical. A new simulator only provides
``scenarios`` and ``replay`` in its ``nanobook.sims`` module.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from nanobook.sims import registry

from tests.conftest import ROOT, require_tool

STATIC = ROOT / "source" / "_static"
SCENARIOS = 300
MODELLED = sorted(name for name, w in registry().items() if w.logic)


def run_in_node(module: str, scenarios: list[dict]) -> list[list[dict]]:
    node = require_tool("node", "nodejs")
    proc = subprocess.run([node, str(ROOT / "tests" / "ext" / "run_logic.mjs")],
                          input=json.dumps({"module": str(STATIC / module), "scenarios": scenarios}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def first_difference(js: list[dict], py: list[dict], scenario: dict) -> str:
    for index, (a, b) in enumerate(zip(js, py, strict=False)):
        if a != b:
            return (f"step {index + 1} ({scenario['ops'][index]}) of {scenario}:\n"
                    f"  JavaScript: {a}\n  engine:     {b}")
    return f"different number of states: JavaScript {len(js)}, engine {len(py)}"


@pytest.mark.parametrize("name", MODELLED)
def test_logic_matches_the_engine_step_by_step(name):
    widget = registry()[name]
    scenarios = widget.scenarios(seed=20261128, count=SCENARIOS)
    steps = sum(len(s["ops"]) for s in scenarios)
    assert steps > 10 * SCENARIOS  # the scenarios are not trivially short
    js_states = run_in_node(widget.logic, scenarios)
    for scenario, js in zip(scenarios, js_states, strict=True):
        py = widget.replay(scenario)
        assert js == py, first_difference(js, py, scenario)


@pytest.mark.parametrize("name", MODELLED)
def test_the_scenarios_reach_the_interesting_cases(name):
    """Refusals and reuse of freed blocks both happen, or the comparison would prove little."""
    widget = registry()[name]
    scenarios = widget.scenarios(seed=20261128, count=SCENARIOS)
    outcomes = [state["ok"] for s in scenarios for state in widget.replay(s)]
    assert False in outcomes and outcomes.count(True) > outcomes.count(False)


def test_the_harness_sees_a_difference(tmp_path):
    """A logic module that differs from the engine in one detail is caught."""
    good = (STATIC / "sim" / "paged-allocator" / "logic.js").read_text()
    broken = good.replace("freeList.unshift(block)", "freeList.push(block)")
    assert broken != good
    module = tmp_path / "logic.js"
    module.write_text(broken)
    widget = registry()["paged-allocator"]
    scenarios = widget.scenarios(seed=7, count=50)
    js_states = run_in_node(str(module), scenarios)
    assert any(js != widget.replay(s) for s, js in zip(scenarios, js_states, strict=True))
