"""The prefix-cache explorer computes the engine's keys: ``xxh64.js`` gives the digests of the
Python ``xxhash`` package, and the explorer's key function gives ``compute_block_key``'s keys.

Digests: random bytes of every length from 0 to 300 (every path through the algorithm: the
32-byte stripes, the 8-byte words, the 4-byte word and the last bytes), with seeds 0, 1,
2**63 + 5 and 2**64 - 1. Keys: random blocks of 1 to 32 token ids anywhere in [0, 2**31), with
and without a previous key, at full width and narrowed. A changed constant or byte order in
either module is caught.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest
import xxhash
from nanobook.sims.prefix_cache import key_function

from tests.conftest import ROOT, require_tool

SIM = ROOT / "source" / "_static" / "sim"
RUNNER = ROOT / "tests" / "ext" / "run_block_keys.mjs"
SEEDS = (0, 1, 2**63 + 5, 2**64 - 1)


def cases(seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    digests = [{"hex": rng.randbytes(length).hex(), "seed": str(s)}
               for length in range(301) for s in SEEDS]
    keys = []
    for _ in range(600):
        tokens = [rng.choice([rng.randrange(2**31), rng.randrange(4096), 0, 2**31 - 1])
                  for _ in range(rng.randint(1, 32))]
        previous = None if rng.random() < 0.3 else rng.randrange(2**64)
        keys.append({"tokens": tokens, "previous": previous, "bits": rng.choice([64, 64, 8, 4])})
    return digests, keys


def engine_answers(digests, keys) -> dict:
    return {
        "digests": [str(xxhash.xxh64_intdigest(bytes.fromhex(d["hex"]), int(d["seed"])))
                    for d in digests],
        "keys": [str(key_function(k["bits"])(tuple(k["tokens"]), k["previous"])) for k in keys],
    }


def node_answers(sim, digests, keys) -> dict:
    node = require_tool("node", "nodejs")
    # previous keys go as decimal strings: JSON numbers above 2**53 lose digits in JavaScript
    wire = [{**k, "previous": None if k["previous"] is None else str(k["previous"])} for k in keys]
    proc = subprocess.run(
        [node, str(RUNNER)], capture_output=True, text=True, timeout=300,
        input=json.dumps({"xxh64": str(sim / "prefix-cache" / "xxh64.js"),
                          "logic": str(sim / "prefix-cache" / "logic.js"),
                          "digests": digests, "keys": wire}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_digests_and_keys_equal_the_engines():
    digests, keys = cases(20261128)
    expected = engine_answers(digests, keys)
    got = node_answers(SIM, digests, keys)
    for name in ("digests", "keys"):
        wrong = [(case, e, g) for case, e, g in
                 zip(digests if name == "digests" else keys, expected[name], got[name],
                     strict=True) if e != g]
        assert not wrong, f"{len(wrong)} {name} differ, the first: {wrong[0]}"


def test_a_known_key():
    """One key written out, so that a change of the engine's byte layout is seen here too."""
    assert key_function(64)((1, 2, 3, 4), None) == xxhash.xxh64_intdigest(
        bytes([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]))
    assert key_function(4)((1, 2, 3, 4), 7) == xxhash.xxh64_intdigest(
        (7).to_bytes(8, "little") + bytes([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0])) & 15


MUTATIONS = [
    ("xxh64.js", "const PRIME3 = 0x165667B19E3779F9n;", "const PRIME3 = 0x165667B19E3779F7n;"),
    ("xxh64.js", "hash = mul(rotl(hash, 11), PRIME1);", "hash = mul(rotl(hash, 13), PRIME1);"),
    ("xxh64.js", "hash = (hash + BigInt(length)) & MASK;", "hash = hash & MASK;"),
    ("xxh64.js", "for (; at + 32 <= length; at += 32) {", "for (; at + 32 < length; at += 32) {"),
    ("logic.js", "if (previous !== null) view.setBigUint64(0, previous, true);",
     "if (previous !== null) view.setBigUint64(0, previous, false);"),
]


@pytest.mark.parametrize(("file", "line", "wrong"), MUTATIONS)
def test_the_comparison_sees_a_difference(tmp_path, file, line, wrong):
    shutil.copytree(SIM, tmp_path / "sim", ignore=shutil.ignore_patterns("*.css", "*.json"))
    path = tmp_path / "sim" / "prefix-cache" / file
    good = path.read_text()
    assert good.count(line) == 1
    path.write_text(good.replace(line, wrong))
    digests, keys = cases(7)
    assert node_answers(tmp_path / "sim", digests, keys) != engine_answers(digests, keys)
