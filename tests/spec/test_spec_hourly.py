"""``[prices]`` hourly rates for pricing measured work, and the digests around them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from labelgate.errors import SpecError
from labelgate.spec import load_spec, parse_spec
from labelgate.spec.model import ANNOTATOR_HOURLY_USD, REVIEW_HOURLY_USD, SECONDS_PER_BOX

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spec.toml"

MINIMAL = """
[project]
name = "minimal"

[[classes]]
id = 1
name = "car"

[[edge_cases]]
id = "EC1"
rule = "A car on a trailer is one car."
"""


def test_hourly_defaults_buy_a_mid_range_box_at_the_stated_throughput() -> None:
    prices = parse_spec(MINIMAL).prices
    # 0.10 USD per box (mid-range of 0.05-0.15) at 10 s per box: 360 boxes an hour
    assert SECONDS_PER_BOX == 10.0
    assert prices.annotator_hourly_usd == ANNOTATOR_HOURLY_USD == pytest.approx(36.0)
    assert prices.review_hourly_usd == REVIEW_HOURLY_USD == pytest.approx(36.0)
    assert prices.annotator_hourly_usd * SECONDS_PER_BOX / 3600 == pytest.approx(prices.box)


def test_hourly_rates_at_their_default_keep_every_earlier_digest() -> None:
    base = parse_spec(MINIMAL)
    explicit = parse_spec(
        MINIMAL + "\n[prices]\nannotator_hourly_usd = 36.0\nreview_hourly_usd = 36\n"
    )
    # omitted and explicit defaults: one canonical form, without the later keys, so a
    # digest stored before the hourly rates existed still matches
    assert explicit.canonical_json() == base.canonical_json()
    assert explicit.digest() == base.digest()
    prices = orjson.loads(base.canonical_json())["prices"]
    assert set(prices) == {"tag", "box", "polygon", "mask", "keypoints"}


def test_a_set_hourly_rate_changes_the_digest_but_not_the_taxonomy() -> None:
    base = load_spec(EXAMPLE)
    text = EXAMPLE.read_text().replace("box = 0.08", "box = 0.08\nannotator_hourly_usd = 12.5")
    cheaper = parse_spec(text)
    assert cheaper.prices.annotator_hourly_usd == 12.5
    assert cheaper.prices.review_hourly_usd == 36.0
    assert orjson.loads(cheaper.canonical_json())["prices"]["annotator_hourly_usd"] == 12.5
    assert cheaper.digest() != base.digest()
    assert cheaper.taxonomy_digest() == base.taxonomy_digest()
    again = parse_spec(text.replace("annotator_hourly_usd = 12.5", "annotator_hourly_usd = 40"))
    assert again.digest() not in (base.digest(), cheaper.digest())


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("annotator_hourly_usd = -1.0", "greater than or equal to 0"),
        ('review_hourly_usd = "30"', "review_hourly_usd"),
    ],
)
def test_bad_hourly_rates_name_their_key(line: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + f"\n[prices]\n{line}\n", source="bad.toml")
    where = line.split(" ")[0]
    problems = dict(info.value.problems)
    assert f"prices.{where}" in problems, problems
    assert fragment in f"prices.{where}: {problems[f'prices.{where}']}"


def test_price_multiple_is_the_pool_else_the_cohort_default_else_one() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.price_multiple("eve", "expert") == 2.2  # managed-pod sets 2.2
    assert spec.price_multiple("ana", "crowd") == 1.0  # crowd-a: the crowd default
    assert spec.price_multiple("gus", "managed") == 2.5  # in no pool: managed default
    assert spec.price_multiple("zoe", "expert") == 3.0
    assert spec.price_multiple("rita", None) == 1.0
