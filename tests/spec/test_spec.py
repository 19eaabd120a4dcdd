from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelgate.core.generate import SceneConfig, generate_dataset
from labelgate.core.taxonomy import TIER_RANGES, AttributeType, PrecisionTier
from labelgate.errors import SpecError
from labelgate.spec import ProgramSpec, load_spec, parse_spec

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


def problems_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="bad.toml")
    return info.value.problems


# --- the example ---------------------------------------------------------------------------


def test_example_spec_loads_and_matches_the_generator_taxonomy() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.project.name == "street-scenes"
    assert spec.scene_types == ("highway", "suburban", "urban")
    generated = SceneConfig().taxonomy()
    assert spec.taxonomy().classes == generated.classes
    scenes = set(generate_dataset(50, seed=0).images.scene_type.tolist())
    assert scenes <= set(spec.scene_types)
    assert len(spec.edge_cases) >= 3
    assert {p.cohort for p in spec.pools} == {"crowd", "managed"}
    assert spec.class_by_name("person").scene_thresholds == {"highway": 0.8}


def test_example_attributes_become_core_attribute_specs_with_class_ids() -> None:
    taxonomy = load_spec(EXAMPLE).taxonomy()
    occluded = taxonomy.attribute("occluded")
    assert occluded.type is AttributeType.BOOL and occluded.classes == () and occluded.required
    light = taxonomy.attribute("light_state")
    assert light.type is AttributeType.SELECT
    assert light.classes == (4,)
    assert light.default == "unknown" and "green" in light.values


# --- defaults ------------------------------------------------------------------------------


def test_defaults_are_the_seed_numbers() -> None:
    spec = parse_spec(MINIMAL)
    gates = spec.gates
    assert gates.gold_set_size == 500
    assert gates.pilot_agreement == 0.95
    assert gates.review_accuracy == 0.98
    assert gates.qa_sample_rate == 0.10
    assert gates.defect_limit == 0.02
    assert gates.confidence == 0.95
    assert gates.min_edge_case_rules == 1
    assert gates.rework_policy == "defective"
    assert gates.max_rework_cycles == 3
    assignment = spec.assignment
    assert assignment.double_annotation_rate == 1.0
    assert (assignment.gold_rate, assignment.honeypot_rate) == (0.02, 0.02)
    assert assignment.rework_to == "original" and assignment.qualify_per == ("class", "scene_type")
    # each price is the middle of the seed's range
    prices = spec.prices
    for kind, (low, high) in {
        "tag": (0.02, 0.05),
        "box": (0.05, 0.15),
        "polygon": (0.20, 0.60),
        "mask": (0.80, 3.00),
    }.items():
        assert prices.price(kind) == pytest.approx((low + high) / 2)
    assert prices.keypoints > 0


def test_class_defaults_fill_tier_threshold_and_sla() -> None:
    spec = parse_spec(MINIMAL)
    car = spec.class_by_name("car")
    assert car.tier == "loose" and car.kind == "box"
    assert car.iou_threshold == TIER_RANGES[PrecisionTier.LOOSE][2]
    assert car.sla.iou_threshold == car.iou_threshold
    assert car.sla.agreement == 0.70 and car.sla.max_missing_rate == 0.02


def test_prices_override_one_type_and_keep_the_others() -> None:
    spec = parse_spec(MINIMAL + "\n[prices]\nbox = 0.08\n")
    assert spec.prices.box == 0.08
    assert spec.prices.mask == parse_spec(MINIMAL).prices.mask


def test_pool_price_multiple_defaults_by_cohort() -> None:
    text = MINIMAL + (
        '\n[[pools]]\nname = "c"\ncohort = "crowd"\n'
        '\n[[pools]]\nname = "m"\ncohort = "managed"\n'
        '\n[[pools]]\nname = "m2"\ncohort = "managed"\nprice_multiple = 2.0\n'
    )
    assert [p.price_multiple for p in parse_spec(text).pools] == [1.0, 2.5, 2.0]


# --- problems, each with its TOML path -----------------------------------------------------


BAD = """
scene_types = ["highway", "urban", "urban"]

[project]
name = "bad"
colour = "red"

[[classes]]
id = 1
name = "car"
tier = "standard"

[[classes]]
id = 1
name = "person"
tier = "tight"
iou_threshold = 0.6
scene_thresholds = { rural = 0.8, highway = 0.95 }

[[classes]]
id = 3
name = "car"
kind = "cuboid"
sla = { agreement = 1.5 }

[[classes]]
id = 4
name = "pose"
kind = "keypoints"
tier = "loose"
keypoints = ["head", "neck", "head"]
skeleton = [[1, 2], [2, 7]]

[[attributes]]
name = "occluded"
type = "bool"
values = ["yes"]
classes = ["pedestrian"]

[[attributes]]
name = "light_state"
type = "select"

[[attributes]]
name = "occluded"
type = "bool"

[[edge_cases]]
id = "EC1"
rule = "x"
classes = ["bus"]

[gates]
defect_limit = 1.2
qa_sample_rate = "10%"
rework_policy = "everything"
min_edge_case_rules = 2

[assignment]
gold_rate = 0.6
honeypot_rate = 0.5
qualify_per = ["class", "annotator"]

[prices]
box = -0.1
lidar = 1.0

[[pools]]
name = "crowd"
cohort = "crowd"
annotators = ["ana", "bo", "ana"]

[[pools]]
name = "pod"
cohort = "vendor"
annotators = ["bo"]
"""


def test_every_problem_is_reported_at_once_with_its_toml_path() -> None:
    problems = dict(problems_of(BAD))
    expected = {
        "scene_types[2]": "listed twice",
        "project.colour": "unknown key",
        "classes[1].id": "duplicate class id 1",
        "classes[2].name": "duplicate class name 'car'",
        "classes[1].iou_threshold": "tier tight allows IoU 0.75-0.9, got 0.6",
        "classes[1].scene_thresholds.rural": "unknown scene type 'rural'",
        "classes[1].scene_thresholds.highway": "tier tight allows IoU 0.75-0.9, got 0.95",
        "classes[2].kind": "'tag', 'box', 'polygon', 'mask' or 'keypoints'",
        "classes[2].sla.agreement": "expected less than or equal to 1",
        "classes[3].keypoints[2]": "duplicate keypoint 'head'",
        "classes[3].skeleton[1][1]": "1-based keypoint index in 1..3, got 7",
        "attributes[0].values": "a bool attribute takes no values",
        "attributes[0].classes[0]": "unknown class 'pedestrian'",
        "attributes[1].values": "a select attribute needs its allowed values",
        "attributes[2].name": "duplicate attribute name 'occluded'",
        "edge_cases[0].classes[0]": "unknown class 'bus'",
        "edge_cases": "expected at least 2 edge-case rules",
        "gates.defect_limit": "got 1.2",
        "gates.qa_sample_rate": "got '10%'",
        "gates.rework_policy": "'defective' or 'batch'",
        "assignment": "gold_rate + honeypot_rate",
        "assignment.qualify_per[1]": "'class' or 'scene_type'",
        "prices.box": "greater than or equal to 0",
        "prices.lidar": "unknown key",
        "pools[0].annotators[2]": "annotator 'ana' listed twice",
        "pools[1].annotators[0]": "annotator 'bo' is already in pool 'crowd'",
        "pools[1].cohort": "'crowd', 'managed' or 'expert'",
    }
    for location, fragment in expected.items():
        assert location in problems, f"{location} not reported; got {sorted(problems)}"
        assert fragment in problems[location], (location, problems[location])


def test_the_message_names_the_file_and_lists_one_problem_per_line() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(BAD, source="/programs/street/spec.toml")
    lines = str(info.value).splitlines()
    assert lines[0] == f"spec.toml: {len(info.value.problems)} problems"
    assert len(lines) == len(info.value.problems) + 1
    assert all(line.startswith("spec.toml: ") for line in lines)
    assert "spec.toml: classes[1].iou_threshold: tier tight allows IoU 0.75-0.9, got 0.6" in lines


def test_problems_come_in_spec_order() -> None:
    locations = [where for where, _ in problems_of(BAD)]
    assert locations.index("scene_types[2]") < locations.index("classes[1].id")
    assert locations.index("classes[1].id") < locations.index("classes[2].kind")
    assert locations.index("classes[2].kind") < locations.index("attributes[0].values")
    assert locations.index("pools[0].annotators[2]") < locations.index("pools[1].cohort")


@pytest.mark.parametrize(
    ("snippet", "location", "fragment"),
    [
        pytest.param(
            '[project]\nname = "x"\nscene_types = ["a"]\n',
            "project.scene_types",
            "must come before the first [table]",
            id="top-level-key-after-a-table",
        ),
        pytest.param(
            '[project]\nname = "x"\ndescriptoin = "y"\n',
            "project.descriptoin",
            "did you mean 'description'?",
            id="typo-gets-a-suggestion",
        ),
        pytest.param('[project]\nname = ""\n', "project.name", "at least 1 character", id="empty"),
        pytest.param("", "project", "required key missing", id="missing-table"),
        pytest.param(
            '[project]\nname = "x"\n[gates]\ngold_set_size = 500.0\n',
            "gates.gold_set_size",
            "valid integer",
            id="float-for-int",
        ),
        pytest.param(
            '[project]\nname = "x"\n[assignment]\ndouble_annotation_rate = true\n',
            "assignment.double_annotation_rate",
            "valid number",
            id="bool-is-not-a-rate",
        ),
        pytest.param(
            '[project]\nname = "x"\n[classes]\nid = 1\nname = "car"\n',
            "classes",
            "write [[classes]], not [classes]",
            id="table-for-array-of-tables",
        ),
        pytest.param(
            '[[project]]\nname = "x"\n',
            "project",
            "write [project], not [[project]]",
            id="array-of-tables-for-table",
        ),
        pytest.param(
            '[project]\nname = "x"\n[gates]\nconfidence = 1.0\n',
            "gates.confidence",
            "less than 1",
            id="confidence-open-interval",
        ),
    ],
)
def test_single_problems(snippet: str, location: str, fragment: str) -> None:
    problems = dict(problems_of(snippet))
    assert location in problems, problems
    assert fragment in problems[location]


def test_a_bad_class_is_reported_once_not_also_as_a_too_short_array() -> None:
    problems = problems_of(MINIMAL.replace('name = "car"', 'name = "car"\nsla = 0.5'))
    assert problems == [("classes[0].sla", "expected a table, got 0.5")]


def test_keypoint_kinds_need_names_and_other_kinds_refuse_them() -> None:
    text = MINIMAL + (
        '\n[[classes]]\nid = 2\nname = "pose"\nkind = "keypoints"\n'
        '\n[[classes]]\nid = 3\nname = "sign"\nkeypoints = ["a"]\n'
    )
    problems = dict(problems_of(text))
    assert "keypoint names" in problems["classes[1].keypoints"]
    assert "only keypoints classes" in problems["classes[2].keypoints"]


def test_keypoint_class_reaches_the_taxonomy() -> None:
    text = MINIMAL + (
        '\n[[classes]]\nid = 2\nname = "pose"\nkind = "keypoints"\n'
        'keypoints = ["head", "neck", "hip"]\nskeleton = [[1, 2], [2, 3]]\n'
    )
    info = parse_spec(text).taxonomy().by_id(2)
    assert info.keypoints == ("head", "neck", "hip")
    assert info.skeleton == ((1, 2), (2, 3))


def test_sla_iou_below_the_matching_threshold_is_refused() -> None:
    text = MINIMAL.replace('name = "car"', 'name = "car"\nsla = { iou_threshold = 0.4 }')
    assert "expected >= 0.5" in dict(problems_of(text))["classes[0].sla.iou_threshold"]


@pytest.mark.parametrize(
    ("text", "location"),
    [
        pytest.param('[project]\nname = "x"\nname = "y"\n', "line 3, column 11", id="dup-key"),
        pytest.param("[project]\nname = x\n", "line 2, column 8", id="bare-value"),
        pytest.param(
            '[project]\nname = "x"\ngates = [\n', "line 4, column 1 (end of file)", id="at-end"
        ),
    ],
)
def test_toml_syntax_error_names_file_line_and_column(text: str, location: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="/somewhere/spec.toml")
    message = str(info.value)
    assert message.startswith(f"spec.toml: {location}: ")
    assert "invalid TOML" in message
    assert info.value.location == location


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.toml")


def test_python_construction_runs_the_cross_checks_too() -> None:
    with pytest.raises(ValueError, match=r"classes\[1\]\.name: duplicate class name"):
        ProgramSpec.model_validate(
            {
                "project": {"name": "x"},
                "classes": [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}],
                "edge_cases": [{"id": "a", "rule": "b"}],
            }
        )


def test_spec_is_frozen_and_hashable() -> None:
    spec = parse_spec(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        spec.project = spec.project  # type: ignore[misc]  # the point of the test
    assert hash(spec) == hash(parse_spec(MINIMAL))


# --- identity ------------------------------------------------------------------------------


REORDERED = """
[[edge_cases]]
rule = "A car on a trailer is one car."
id = "EC1"

[gates]
gold_set_size = 500
defect_limit = 0.020
confidence = 0.95

[[classes]]
name = "car"
tier = "loose"
iou_threshold = 0.5
id = 1
kind = "box"
sla = { max_missing_rate = 0.02, agreement = 0.7 }

[project]
description = ""
name = "minimal"

[prices]
mask = 1.9
"""


def test_canonical_json_is_equal_for_reordered_and_defaulted_toml() -> None:
    a, b = parse_spec(MINIMAL), parse_spec(REORDERED)
    assert a.canonical_json() == b.canonical_json()
    assert a.digest() == b.digest() == a.digest()
    assert a == b


def test_canonical_json_ignores_the_order_of_classes_and_set_like_lists() -> None:
    spec = load_spec(EXAMPLE)
    text = EXAMPLE.read_text()
    swapped = text.replace('"ana", "bo", "chen", "dee"', '"dee", "chen", "bo", "ana"').replace(
        'scene_types = ["highway", "suburban", "urban"]',
        'scene_types = ["urban", "highway", "suburban"]',
    )
    assert swapped != text
    assert parse_spec(swapped).digest() == spec.digest()


def test_digest_changes_with_any_value() -> None:
    a = parse_spec(MINIMAL)
    b = parse_spec(MINIMAL + "\n[gates]\ndefect_limit = 0.03\n")
    assert a.digest() != b.digest()
    assert len(a.digest()) == 64 and int(a.digest(), 16) >= 0


def test_taxonomy_digest_ignores_gates_prices_pools_and_edge_cases() -> None:
    base = load_spec(EXAMPLE)
    text = EXAMPLE.read_text()
    other = parse_spec(
        text.replace("gold_set_size = 500", "gold_set_size = 800")
        .replace("box = 0.08", "box = 0.12")
        .replace('"eve", "farid"', '"eve", "farid", "gus"')
        .replace("thin haze is not labelled", "thin haze is never labelled")
    )
    assert other.digest() != base.digest()
    assert other.taxonomy_digest() == base.taxonomy_digest()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("iou_threshold = 0.85", "iou_threshold = 0.9", id="threshold"),
        pytest.param("highway = 0.8", "highway = 0.85", id="scene-override"),
        pytest.param('name = "dog"', 'name = "dog or cat"', id="class-name"),
        pytest.param('"off", "unknown"', '"off", "flashing", "unknown"', id="attribute-values"),
    ],
)
def test_taxonomy_digest_changes_when_a_class_or_attribute_changes(old: str, new: str) -> None:
    text = EXAMPLE.read_text()
    assert old in text
    assert parse_spec(text.replace(old, new, 1)).taxonomy_digest() != (
        load_spec(EXAMPLE).taxonomy_digest()
    )


# --- thresholds ----------------------------------------------------------------------------


HAND = """
scene_types = ["highway", "urban"]

[project]
name = "hand"

[[classes]]
id = 7
name = "person"
tier = "tight"
iou_threshold = 0.75
scene_thresholds = { highway = 0.85 }

[[classes]]
id = 3
name = "truck"
tier = "standard"
scene_thresholds = { urban = 0.75 }

[[classes]]
id = 5
name = "smoke"

[[edge_cases]]
id = "a"
rule = "b"
"""


def test_thresholds_honour_scene_overrides_per_object() -> None:
    spec = parse_spec(HAND)
    class_ids = np.array([7, 7, 7, 3, 3, 3, 5, 5, 99])
    scenes = np.array(
        ["highway", "urban", "rural", "highway", "urban", "rural", "highway", "urban", "urban"],
        dtype=object,
    )
    got = spec.thresholds(class_ids, scenes)
    expected = [0.85, 0.75, 0.75, 0.7, 0.75, 0.7, 0.5, 0.5, np.nan]
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float64


def test_thresholds_without_scenes_are_the_class_thresholds() -> None:
    spec = parse_spec(HAND)
    class_ids = np.array([3, 5, 7, 7])
    np.testing.assert_array_equal(spec.thresholds(class_ids), [0.7, 0.5, 0.75, 0.75])
    np.testing.assert_array_equal(spec.thresholds(class_ids), spec.taxonomy().thresholds(class_ids))
    assert spec.thresholds(np.array([], dtype=np.int64)).shape == (0,)
    assert spec.thresholds(np.array([], dtype=np.int64), np.array([], dtype=str)).shape == (0,)


def test_thresholds_on_a_generated_data_set_match_a_per_object_oracle() -> None:
    spec = load_spec(EXAMPLE)
    dataset = generate_dataset(300, seed=2)
    ann = dataset.annotations
    scenes = dataset.images.scene_type[dataset.images.index_of(ann.image_id)]
    got = spec.thresholds(ann.class_id, scenes)
    oracle = [
        spec.class_by_id(c).scene_thresholds.get(s, spec.class_by_id(c).threshold)
        for c, s in zip(ann.class_id.tolist(), scenes.tolist())
    ]
    np.testing.assert_array_equal(got, oracle)
    person_on_highway = (ann.class_id == 2) & (scenes == "highway")
    assert person_on_highway.any() and (got[person_on_highway] == 0.8).all()


def test_thresholds_refuse_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        parse_spec(HAND).thresholds(np.array([7, 3]), np.array(["urban"]))
