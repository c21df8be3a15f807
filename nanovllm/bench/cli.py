"""``python -m nanovllm bench``: one workload, the whole suite, or a summary of records.

    python -m nanovllm bench --workload a --model FOLDER --out DIR     # one record per run
    python -m nanovllm bench --workload a --engine transformers --subset 64
    python -m nanovllm bench --suite --model FOLDER --out DIR          # everything (GPU)
    python -m nanovllm bench --summarize DIR                           # tables and ratios
    python -m nanovllm bench --workload b --small                      # laptop CPU, tiny model
    python -m nanovllm bench --quality --out DIR      # the 8-bit KV cache's quality cost

Without ``--model`` the bundled tiny model runs; ``--small`` shrinks every workload to
sizes that finish in seconds on a CPU (``workloads.SMALL``). ``--set key=value`` changes
one parameter of the workload's generator (e.g. ``--set num_requests=32``).
"""

import sys

from nanovllm.bench import workloads


def add_bench(commands) -> None:
    parser = commands.add_parser("bench", help="benchmark: workloads (a)-(e), records as JSON")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--workload", choices=sorted(workloads.BUILDERS))
    what.add_argument("--suite", action="store_true", help="every workload and variant")
    what.add_argument("--summarize", metavar="DIR", help="print tables of the records in DIR")
    what.add_argument("--quality", action="store_true",
                      help="perplexity and greedy agreement, KV cache in the model's dtype "
                           "and in fp8 (bench/quality.py)")
    parser.add_argument("--engine", default="nanovllm", choices=["nanovllm", "transformers"])
    parser.add_argument("--model", default="", help="model folder (default: the bundled model)")
    parser.add_argument("--out", default="bench-records", help="folder for the JSON records")
    parser.add_argument("--small", action="store_true", help="CPU-sized workloads")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a workload generator parameter (int)")
    parser.add_argument("--subset", type=int, default=0, help="run only the first N requests")
    parser.add_argument("--variant", default="", help="label for the record's file name")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--no-prefix-caching", action="store_true")
    parser.add_argument("--no-chunked-prefill", action="store_true")
    parser.add_argument("--overlap-steps", choices=["auto", "on", "off"], default="auto",
                        help="schedule step N+1 while step N runs (engine/overlap.py); "
                             "auto: on a GPU")
    parser.add_argument("--gemv-max-rows", type=int, default=None,
                        help="GPU: products of at most N rows in kernels/gemv.py (0: off; "
                             "default: Config's)")
    parser.add_argument("--dtype", default="auto",
                        choices=["auto", "float32", "float16", "bfloat16"],
                        help="the model's numbers (auto: the checkpoint's; float32 on a CPU)")
    parser.add_argument("--kv-cache-dtype", choices=["auto", "fp8"], default="auto",
                        help="fp8: keys and values in 8 bits (layers/fp8.py)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="transformers: requests per generate() call (default: all)")
    parser.add_argument("--max-time", type=float, default=None,
                        help="transformers: stop generating after this many seconds")
    parser.add_argument("--deadline", type=float, default=None,
                        help="suite: start nothing new after this many seconds")
    parser.add_argument("--hf-subset", type=int, default=64,
                        help="suite: also run (a) on its first N requests, as the baseline does")
    parser.add_argument("--sweep-tiles", type=int, default=None,
                        help="suite: time only the first N decode tiles (0: no kernel sweep)")
    parser.add_argument("--no-profile", action="store_true", help="suite: skip the profiles")


def parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise ValueError(f"--set {pair!r} is invalid: expected KEY=INTEGER")
        overrides[key] = int(value)
    return overrides


def run_one(args) -> None:
    from nanovllm.bench.harness import run_workload, settings, use_scheduler, warm_up
    from nanovllm.bench.record import make_record, write_record
    from nanovllm.bench.suite import roofline_for
    from nanovllm.engine.llm_engine import resolve_model_folder
    from nanovllm.engine.overlap import make_engine
    from nanovllm.models.model_config import ModelConfig

    folder = resolve_model_folder(args.model)
    vocab = ModelConfig.from_folder(folder).vocab_size
    overrides = parse_overrides(args.set)
    sizes = [None]
    if args.workload == "e" and "batch_size" not in overrides:
        sizes = workloads.SMALL_SWEEP_BATCH_SIZES if args.small else workloads.SWEEP_BATCH_SIZES
    runs = []
    for size in sizes:
        extra = {} if size is None else {"batch_size": size}
        try:
            workload = workloads.build(args.workload, vocab, args.small, **overrides, **extra)
        except TypeError as error:
            raise ValueError(f"--set: {error}") from None
        if args.subset:
            workload = workload.subset(args.subset)
        variant = args.variant or (f"bs{len(workload.requests)}" if args.workload == "e"
                                   else "default")
        runs.append((workload, variant))

    if args.engine == "transformers":
        from nanovllm.bench.hf_baseline import run_transformers

        for workload, variant in runs:
            results, hf_settings = run_transformers(str(folder), workload, args.device,
                                                    args.batch_size, args.max_time)
            if args.variant or args.workload == "e":
                hf_settings["variant"] = variant
            path = write_record(make_record(workload.summary(), "transformers", hf_settings,
                                            results), args.out)
            print(f"{path}: {results['output_tokens_per_s']:.0f} output tok/s")
        return
    config = dict(device=args.device, enforce_eager=args.enforce_eager,
                  enable_torch_compile=not args.no_torch_compile,
                  enable_prefix_caching=not args.no_prefix_caching,
                  enable_chunked_prefill=not args.no_chunked_prefill,
                  overlap_steps={"on": True, "off": False}.get(args.overlap_steps, "auto"),
                  kv_cache_dtype=args.kv_cache_dtype, dtype=args.dtype)
    if args.gemv_max_rows is not None:
        config["gemv_max_rows"] = args.gemv_max_rows
    if args.max_num_batched_tokens:
        config["max_num_batched_tokens"] = args.max_num_batched_tokens
    config.update(runs[0][0].engine_settings)
    config["max_num_seqs"] = max(config.get("max_num_seqs", 256),
                                 *(len(w.requests) for w, _ in runs))
    engine = make_engine(args.model, **config)
    warm_up(engine)
    for workload, variant in runs:
        use_scheduler(engine, **workload.engine_settings)
        results = run_workload(engine, workload)
        record = make_record(workload.summary(), "nanovllm", settings(engine, variant), results,
                             roofline=roofline_for(engine, workload))
        path = write_record(record, args.out)
        print(f"{path}: {results['output_tokens_per_s']:.0f} output tok/s, "
              f"{results['total_tokens_per_s']:.0f} total tok/s")


def run_bench(args) -> None:
    if args.summarize:
        from nanovllm.bench.report import summarize_records

        sys.stdout.write(summarize_records(args.summarize))
    elif args.quality:
        from nanovllm.bench.quality import run_quality

        record = run_quality(args.model, args.device, args.dtype, out_dir=args.out)
        for name, result in record["results"].items():
            agreement = result["greedy_agreement_with_auto"]
            print(f"{name:<16} perplexity {result['perplexity']:.4f} "
                  f"({result['perplexity_vs_auto']:+.3%}), greedy: "
                  f"{agreement['identical_prompts']}/{agreement['prompts']} prompts identical, "
                  f"{agreement['share']:.1%} of tokens before the first difference")
    elif args.suite:
        from nanovllm.bench.suite import run_suite

        run_suite(args.model, args.out, args.deadline, args.hf_subset, args.small,
                  profile=not args.no_profile, sweep_tiles=args.sweep_tiles)
    else:
        run_one(args)
