"""Every simulator that models the engine behaves exactly as the engine does.

For each widget with a logic module, the same generated scenarios go through its
JavaScript logic (in Node) and through the Python engine (``Widget.replay``); the
state after every step must be identical. A new simulator only provides
``scenarios`` and ``replay`` in its ``nanobook.sims`` module.
"""

from __future__ import annotations

import json
import shutil
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
            return (f"step {index + 1} of {scenario}:\n"
                    f"  JavaScript: {a}\n  engine:     {b}")
    return f"different number of states: JavaScript {len(js)}, engine {len(py)}"


@pytest.mark.parametrize("name", MODELLED)
def test_logic_matches_the_engine_step_by_step(name):
    widget = registry()[name]
    scenarios = widget.scenarios(seed=20261128, count=SCENARIOS)
    py_states = [widget.replay(scenario) for scenario in scenarios]
    assert sum(map(len, py_states)) > 10 * SCENARIOS  # the scenarios are not trivially short
    js_states = run_in_node(widget.logic, scenarios)
    for scenario, js, py in zip(scenarios, js_states, py_states, strict=True):
        assert js == py, first_difference(js, py, scenario)


@pytest.mark.parametrize("name", MODELLED)
def test_the_scenarios_reach_the_interesting_cases(name):
    """Each widget names the cases its scenarios must reach, or the comparison would prove
    little (for the allocator: refusals; for the scheduler: preemption, chunks, cache hits)."""
    widget = registry()[name]
    scenarios = widget.scenarios(seed=20261128, count=SCENARIOS)
    reached = widget.coverage([widget.replay(s) for s in scenarios])
    assert reached and all(reached.values()), reached


# (widget, a line of its logic, the same line wrong in one detail)
MUTATIONS = [
    ("paged-allocator", "freeList.unshift(block)", "freeList.push(block)"),
    ("scheduler-replay", "this.waiting.unshift(victim);", "this.waiting.push(victim);"),
    ("scheduler-replay", "else this.free.unshift(block.id);", "else this.free.push(block.id);"),
    ("scheduler-replay", " && batch.preempted.length === 0", ""),
    ("scheduler-replay", "if (n < todo && !this.config.enable_chunked_prefill) break;", ""),
    # The stepper's requests by lengths and its steps, and the timeline's static batching.
    ("scheduler-stepper", "const first = seqId * TOKEN_STRIDE + 1;",
     "const first = seqId * TOKEN_STRIDE;"),
    ("scheduler-stepper", "batch.preempted.push(victim.seqId);", ""),
    ("scheduler-stepper", "batch.isPrefill.push(!isDecode(seq));", "batch.isPrefill.push(true);"),
    ("scheduler-stepper", "if (this.isCached(block)) this.free.push(block.id);",
     "if (this.isCached(block) || true) this.free.push(block.id);"),
    ("batching-timeline", "arrival: Math.floor(i / size) * WHEN_IDLE",
     "arrival: Math.floor(i / (size + 1)) * WHEN_IDLE"),
    ("next-token", "chosen: top[rank][0],", "chosen: top[0][0],"),
    ("next-token", "kvTokens: ids.length });", "kvTokens: ids.length + 1 });"),
    ("kv-memory", "return 2 * model.layers * model.kvHeads * model.headDim * bytesPerValue;",
     "return 2 * model.layers * model.kvHeads * model.headDim * 2;"),
    ("kv-memory", "const room = usable - weights;", "const room = usable;"),
    ("kv-memory", "if (weights === null) return { name: gpu.name, usable, room: null, fits: null, "
     "all: null };", ""),
    ("prefix-cache", "view.setUint32(head + 4 * i, token, true)",
     "view.setUint32(head + 4 * i, token, false)"),
    ("prefix-cache", "const head = previous === null ? 0 : 8;", "const head = 8;"),
    ("prefix-cache", "seq.numComputedTokens += todo;", ""),
    ("prefix-cache", "if (bits === 64) return blockKey;", "if (bits >= 8) return blockKey;"),
    ("block-table-walk", "const perSplit = Math.ceil(Math.ceil(contextLen / numSplits) / tile) * tile;",
     "const perSplit = Math.ceil(contextLen / numSplits);"),
    ("block-table-walk", "const offset = position % blockSize;", "const offset = (position + 1) % blockSize;"),
]


@pytest.mark.parametrize(("name", "line", "wrong"), MUTATIONS)
def test_the_harness_sees_a_difference(tmp_path, name, line, wrong):
    """A logic module that differs from the engine in one detail is caught."""
    widget = registry()[name]
    good = (STATIC / widget.logic).read_text()
    assert good.count(line) == 1
    # The module may import its neighbours and other widgets' modules (../scheduler-replay/).
    shutil.copytree(STATIC / "sim", tmp_path / "sim", ignore=shutil.ignore_patterns("*.css"))
    module = tmp_path / widget.logic
    module.write_text(good.replace(line, wrong))
    scenarios = widget.scenarios(seed=7, count=SCENARIOS)
    js_states = run_in_node(str(module), scenarios)
    assert any(js != widget.replay(s) for s, js in zip(scenarios, js_states, strict=True))
