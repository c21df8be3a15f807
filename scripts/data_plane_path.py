"""The data plane's size and path, as the issue on making it readable measures them.

    python scripts/data_plane_path.py [SUPERVISION_MODULE]

Prints, in order, the files of ``nanovllm/`` whose code runs during one eager decode step on
the CPU (``LLMEngine.step``, traced with ``sys.settrace`` after a prefill step), then the
Python lines under ``nanovllm/`` outside ``bench/``, ``data/`` and the tensor-parallel
supervision module (default ``engine/tp_supervisor.py``), and any function longer than 40
lines after its docstring.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "nanovllm"


def traced_files() -> list[Path]:
    from nanovllm import LLM, SamplingParams

    engine = LLM(device="cpu").engine
    for prompt in ["ROMEO:", "JULIET: O Romeo"]:
        engine.add_request(prompt, SamplingParams(temperature=0.7, max_tokens=8))
    engine.step()  # the prefill; the next step decodes both
    seen: list[Path] = []

    def tracer(frame, event, arg):
        path = Path(frame.f_code.co_filename)
        if event == "call" and ROOT in path.parents and path not in seen:
            seen.append(path)

    sys.settrace(tracer)
    engine.step()
    sys.settrace(None)
    return seen


def body_lines(node: ast.FunctionDef) -> int:
    first = node.body[0]
    has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
               and isinstance(first.value.value, str))
    start = first.end_lineno + 1 if has_doc and len(node.body) > 1 else first.lineno
    return node.end_lineno - start + 1


def main(supervision: str) -> None:
    for i, path in enumerate(traced_files(), 1):
        print(f"{i:2} {path.relative_to(ROOT.parent)}")
    total = 0
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("bench/", "data/")) or relative == supervision:
            continue
        text = path.read_text()
        total += len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and body_lines(node) > 40:
                print(f"long: {relative}:{node.lineno} {node.name} ({body_lines(node)} lines)")
    print(f"lines: {total} (without bench/, data/ and {supervision})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "engine/tp_supervisor.py")
