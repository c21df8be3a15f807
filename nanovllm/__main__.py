"""Command line: ``python -m nanovllm generate "prompt"``, ``random-checkpoint`` and ``bench``.

``generate`` runs the bundled tiny model unless ``--model`` names a Hugging Face-format
folder, prints each completion, and reports throughput on stderr. With one prompt the
text is printed as it is generated. ``random-checkpoint`` writes a randomly initialised
model folder (e.g. the Qwen3-0.6B configuration) for tests and benchmarks. ``bench``
runs the benchmark workloads and writes JSON records (see ``nanovllm/bench/cli.py``).
"""

import argparse
import sys

from nanovllm.bench.cli import add_bench, run_bench


def add_generate(commands) -> None:
    parser = commands.add_parser("generate", help="complete one or more prompts")
    parser.add_argument("prompts", nargs="+", help="prompt text (several: one batch)")
    parser.add_argument("--model", default="", help="model folder (default: the bundled model)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    parser.add_argument("--top-k", type=int, default=-1, help="-1 or 0: off")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="per-request seed")
    parser.add_argument("--ignore-eos", action="store_true")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="end a completion before this text (may be repeated)")
    parser.add_argument("--chat", action="store_true",
                        help="wrap each prompt as a user message with the model's chat template")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="auto",
                        choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")


def run_generate(args) -> None:
    from nanovllm import SamplingParams
    from nanovllm.llm import LLM

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            max_tokens=args.max_tokens, ignore_eos=args.ignore_eos,
                            seed=args.seed, stop=args.stop)
    llm = LLM(args.model, device=args.device, dtype=args.dtype,
              enforce_eager=args.enforce_eager)
    prompts = args.prompts
    if args.chat:
        prompts = [llm.tokenizer.apply_chat_template([{"role": "user", "content": p}])
                   for p in prompts]
    if len(prompts) == 1:
        for event in llm.stream(prompts, params):
            if event.error:
                sys.exit(f"error: {event.error}")
            print(event.text, end="", flush=True)
        print()
        return
    failed = False
    for output in llm.generate(prompts, params, use_tqdm=sys.stderr.isatty()):
        if output.error:
            failed = True
            print(f"[{output.index}] error: {output.error}")
        else:
            print(f"[{output.index}] {output.text!r} ({output.finish_reason})")
    run = llm.last_run
    print(f"{run.generated_tokens} tokens in {run.seconds:.2f} s: "
          f"{run.generated_tokens / max(run.seconds, 1e-9):.1f} tokens/s", file=sys.stderr)
    if failed:
        sys.exit(1)


def add_random_checkpoint(commands) -> None:
    from nanovllm.utils.random_checkpoint import PRESETS

    parser = commands.add_parser("random-checkpoint",
                                 help="write a randomly initialised model folder")
    parser.add_argument("folder")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)


def run_random_checkpoint(args) -> None:
    from nanovllm.utils.random_checkpoint import PRESETS, write_random_checkpoint

    folder = write_random_checkpoint(args.folder, PRESETS[args.preset], dtype=args.dtype,
                                     seed=args.seed)
    print(f"wrote a random {args.preset} checkpoint ({args.dtype}) to {folder}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nanovllm")
    commands = parser.add_subparsers(dest="command", required=True)
    add_generate(commands)
    add_random_checkpoint(commands)
    add_bench(commands)
    args = parser.parse_args(argv)
    try:
        {"generate": run_generate, "random-checkpoint": run_random_checkpoint,
         "bench": run_bench}[args.command](args)
    except (ValueError, OSError) as error:  # bad input or a bad file: one line, no traceback
        sys.exit("error: " + " ".join(str(error).splitlines()))


if __name__ == "__main__":
    main()
