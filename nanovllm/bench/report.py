"""Read a folder of records and print the tables the book shows, with the ratios it quotes.

Everything here is arithmetic on recorded numbers: this engine's throughput over the
roofline bound, over the transformers baseline measured on the same requests, and the
ablations side by side. It needs no GPU, so the book's build can run it on records.
"""

import json
from pathlib import Path


def load_records(folder: str | Path) -> list[dict]:
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("schema", "").startswith("nanovllm-bench/"):
            records.append(data)
    return records


def find(records: list[dict], engine: str, workload: str, variant: str | None = None):
    for record in records:
        if (record["engine"] == engine and record["workload"]["name"] == workload
                and (variant is None or record["settings"]["variant"] == variant)):
            return record
    return None


def ms(stats: dict | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.2f}"


def table(records: list[dict]) -> list[str]:
    rows = ["| engine | workload | variant | output tok/s | total tok/s | TTFT p50 / p99 ms "
            "| TPOT p50 / p99 ms | ITL p99 ms | wall s | peak GiB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        res = r["results"]
        peak = res.get("peak_gpu_memory_gib")
        rows.append(
            f"| {r['engine']} | {r['workload']['name']} | {r['settings']['variant']} "
            f"| {res['output_tokens_per_s']:,.0f} | {res['total_tokens_per_s']:,.0f} "
            f"| {ms(res['ttft_ms'], 'p50')} / {ms(res['ttft_ms'], 'p99')} "
            f"| {ms(res['tpot_ms'], 'p50')} / {ms(res['tpot_ms'], 'p99')} "
            f"| {ms(res['itl_ms'], 'p99')} | {res['wall_time_s']:.2f} "
            f"| {'-' if peak is None else f'{peak:.1f}'} |")
    return rows


def ratios(records: list[dict]) -> list[str]:
    lines = []
    best = find(records, "nanovllm", "a", "graphs+compile")
    if best and best.get("roofline"):
        bound = best["roofline"]
        lines.append(f"(a) roofline bound ({bound['hardware']['name']}): "
                     f"{bound['output_tokens_per_s']:,.0f} output tok/s "
                     f"({bound['bound']}-bound, {bound['bound_time_s']:.2f} s); measured "
                     f"{best['results']['output_tokens_per_s']:,.0f} = "
                     f"{best['results']['output_tokens_per_s'] / bound['output_tokens_per_s']:.1%}"
                     f" of the bound")
    for hf in (r for r in records if r["engine"] == "transformers"):
        name = hf["workload"]["name"]
        ours = find(records, "nanovllm", name, "graphs+compile")
        if ours:
            ratio = ours["results"]["output_tokens_per_s"] / hf["results"]["output_tokens_per_s"]
            lines.append(f"({name}) nanovllm / transformers generate on the same requests: "
                         f"{ours['results']['output_tokens_per_s']:,.0f} / "
                         f"{hf['results']['output_tokens_per_s']:,.0f} output tok/s = {ratio:.1f}x")
        if best:
            lines.append(f"(a) full workload vs transformers on {name}: "
                         f"{best['results']['output_tokens_per_s'] / hf['results']['output_tokens_per_s']:.1f}x")
    single = find(records, "nanovllm", "b", "graphs+compile")
    if single and single.get("roofline") and single["results"]["tpot_ms"]:
        lines.append(f"(b) TPOT p50 {single['results']['tpot_ms']['p50']:.2f} ms; floor from "
                     f"bytes {single['roofline']['tpot_floor_ms']:.3f} ms")
    return lines


def summarize_records(folder: str | Path) -> str:
    records = load_records(folder)
    return "\n".join(table(records) + [""] + ratios(records)) + "\n"
