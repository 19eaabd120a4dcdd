"""The spec's ``[prelabel]`` section: defaults, per-class thresholds, digests, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelgate.errors import SpecError
from labelgate.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "examples" / "spec.toml").read_text()


def test_defaults_leave_the_digest_as_it_was() -> None:
    plain = parse_spec(TEXT)
    assert (plain.prelabel.threshold, plain.prelabel.control_rate, plain.prelabel.seed) == (
        0.5,
        0.1,
        0,
    )
    # a section at its defaults is not in the canonical form: digests stored before the
    # section existed stay valid, and writing the defaults out changes nothing
    assert "prelabel" not in json.loads(plain.canonical_json())
    explicit = parse_spec(TEXT + "\n[prelabel]\nthreshold = 0.5\ncontrol_rate = 0.1\n")
    assert explicit.digest() == plain.digest()
    changed = parse_spec(TEXT + "\n[prelabel]\ncontrol_rate = 0.2\n")
    assert changed.digest() != plain.digest()
    assert changed.taxonomy_digest() == plain.taxonomy_digest()  # no re-qualification


def test_per_class_thresholds_by_class_name() -> None:
    spec = parse_spec(
        TEXT + '\n[prelabel]\nthreshold = 0.4\nclass_thresholds = { bicycle = 0.8, "traffic '
        'sign" = 0.6 }\n'
    )
    limits = spec.prelabel_thresholds()
    by_name = {c.name: limits[c.id] for c in spec.classes}
    assert by_name["bicycle"] == 0.8 and by_name["traffic sign"] == 0.6
    assert by_name["car"] == 0.4 and len(limits) == len(spec.classes)
    assert spec.prelabel_thresholds(0.3)[spec.class_by_name("car").id] == 0.3
    assert spec.prelabel_thresholds(0.3)[spec.class_by_name("bicycle").id] == 0.8


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        ("class_thresholds = { boat = 0.7 }", "prelabel", "no class named 'boat'"),
        ("threshold = 1.5", "prelabel.threshold", "less than or equal to 1"),
        ('threshold = "0.5"', "prelabel.threshold", "expected a valid number"),
        ("control_rate = -0.1", "prelabel.control_rate", "greater than or equal to 0"),
        ("seed = -1", "prelabel.seed", "greater than or equal to 0"),
        ("treshold = 0.5", "prelabel.treshold", "did you mean 'threshold'"),
    ],
)
def test_bad_values_name_the_key(section: str, where: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(TEXT + f"\n[prelabel]\n{section}\n")
    problems = dict(info.value.problems)
    assert where in problems, problems
    assert message in problems[where]
