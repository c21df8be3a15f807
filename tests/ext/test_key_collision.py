"""``key_collision``: the chance of a false prefix-cache key match, from a bench record; and
``birthday_attempts``, the inputs tried before two share a hash."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from nanobook.values import SECONDS_PER_YEAR, ValueContext, birthday_attempts, key_collision

from tests.conftest import ROOT

SOURCE = ROOT / "source"
RECORD = "bench/h200/nanovllm_c_prefix-cache-on.json"


def context(srcdir: Path | None = SOURCE) -> ValueContext:
    return ValueContext(ROOT, SimpleNamespace(), srcdir=srcdir)


def test_the_numbers_of_the_h200_record():
    record = json.loads((SOURCE / "_records" / RECORD).read_text())
    n = record["settings"]["num_kvcache_blocks"]
    rate = record["results"]["total_tokens_per_s"] / record["settings"]["block_size"]
    ctx = context()
    assert key_collision(ctx, RECORD, "blocks") == n == 70801
    assert key_collision(ctx, RECORD, "any_pair") == pytest.approx(n * (n - 1) / 2**65, rel=1e-9)
    assert key_collision(ctx, RECORD, "per_lookup") == n / 2**64
    assert key_collision(ctx, RECORD, "lookups_per_s") == rate
    assert key_collision(ctx, RECORD, "years") == pytest.approx(
        1 / (n / 2**64 * rate * SECONDS_PER_YEAR), rel=1e-12)
    assert ctx.used_files == [SOURCE / "_records" / RECORD] * 5  # the page follows the record


def test_narrow_keys_collide_almost_surely():
    assert key_collision(context(), RECORD, "any_pair", "16") == pytest.approx(1.0)
    assert key_collision(context(), RECORD, "any_pair", "32") == pytest.approx(
        -math.expm1(-70801 * 70800 / 2**33))


@pytest.mark.parametrize(("args", "message"), [
    ((RECORD, "odds"), "quantity 'odds' is not one of blocks, any_pair, per_lookup, "
                       "lookups_per_s, years"),
    ((RECORD, "years", "0"), "bits '0' must be a whole number from 1 to 256"),
    ((RECORD, "years", "x"), "bits 'x' must be a whole number from 1 to 256"),
    (("bench/h200/none.json", "years"), "no record 'bench/h200/none.json'"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError) as error:
        key_collision(context(), *args)
    assert str(error.value).startswith(message)


def test_birthday_attempts():
    assert birthday_attempts(context(), "64") == pytest.approx(5_382_943_231.4, abs=1)
    assert birthday_attempts(context(), "2") == math.sqrt(2 * math.pi)
    with pytest.raises(ValueError, match="bits '64.5' must be a whole number from 1 to 256"):
        birthday_attempts(context(), "64.5")
