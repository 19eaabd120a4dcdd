from __future__ import annotations

import functools

import numpy as np
import pytest

from labelgate.core import Annotations, Dataset, Images, Kind, Ragged, Taxonomy
from labelgate.core.compare import compare
from labelgate.core.defects import (
    DEFAULT_SEVERITY,
    DEFECT_TYPES,
    Defects,
    DefectType,
    Exposure,
    Severity,
    classify_defects,
    defect_rates,
    root_causes,
)
from labelgate.core.generate import NoiseModel, generate_dataset, generate_pool, perturb
from labelgate.core.geometry_agreement import geometry_agreement
from labelgate.core.iou import pair_iou
from labelgate.core.summary import objects_per_image

EXACT = {
    "miss_base": 0.0,
    "miss_small_extra": 0.0,
    "jitter": 0.0,
    "swap_probability": 0.0,
    "duplicate_probability": 0.0,
    "false_positives_per_image": 0.0,
}


def _reference() -> Dataset:
    taxonomy = Taxonomy.from_names(["car", "bus"])
    boxes = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10], [80, 0, 90, 10]]
    annotations = Annotations.create(
        image_id=[1] * 5 + [2],
        class_id=[1, 1, 1, 2, 1, 1],
        bbox=[*boxes, [0, 0, 10, 10]],
        occluded=[False] * 6,
    )
    return Dataset(
        annotations, Images.create(id=[1, 2], width=[100, 100], height=[50, 50]), taxonomy
    )


def test_every_kind_of_box_defect_is_typed_with_its_severity() -> None:
    reference = _reference()
    other = Annotations.create(
        image_id=[1, 1, 1, 1, 1, 1, 2, 2],
        class_id=[1, 1, 1, 1, 1, 1, 1, 1],
        bbox=[
            [0, 0, 10, 10],  # ref 0: exact
            [0, 0, 10, 10.5],  # copy of ref 0: duplicate
            [18, -0.5, 32, 12],  # ref 1: IoU 100/175 = 0.57, 0.5 px out: fine
            [40, 0, 45, 10],  # ref 2: IoU 0.5, at the loose threshold: fine
            [60, 0, 70, 10],  # ref 3 is a bus: wrong class
            [83, 0, 95, 12],  # ref 4: IoU 70/174 = 0.40, larger: loose; and occluded
            [0, 0, 3, 3],  # image 2: IoU 0.09: below 0.1, so ref 5 is missing, this is extra
            [95, 0, 105, 10],  # image 2: past the 100 px border: invalid
        ],
        occluded=[False, False, False, False, False, True, False, False],
        annotator_id=[4] * 8,
    )
    defects, exposure = classify_defects(reference, other)
    found = sorted(zip(defects.names(), defects.class_id.tolist(), defects.image_id.tolist()))
    assert found == [
        ("attribute_error", 1, 1),
        ("duplicate", 1, 1),
        ("extra", 1, 2),
        ("invalid_geometry", 1, 2),
        ("loose_geometry", 1, 1),
        ("missing", 1, 2),
        ("wrong_class", 2, 1),
    ]
    severity = dict(zip(defects.names(), defects.severity.tolist()))
    assert severity["invalid_geometry"] == list(Severity).index(Severity.CRITICAL)
    assert severity["loose_geometry"] == list(Severity).index(Severity.MINOR)
    assert severity["missing"] == list(Severity).index(Severity.MAJOR)
    # six reference objects plus three unpaired labels (duplicate, extra, invalid)
    assert len(exposure) == 9
    assert set(defects.annotator_id.tolist()) == {4}


@pytest.mark.parametrize(
    ("box", "expected", "severity"),
    [
        pytest.param([1, 1, 9, 9], None, None, id="tight at IoU 0.64, above the loose 0.5"),
        pytest.param([2, 2, 8, 8], "tight_geometry", Severity.MINOR, id="tight at IoU 0.36"),
        pytest.param([-3, -3, 13, 13], "loose_geometry", Severity.MINOR, id="loose at 0.39"),
        pytest.param([3, 3, 7, 7], "tight_geometry", Severity.MAJOR, id="tight at 0.16: far"),
    ],
)
def test_geometry_below_the_tier_is_loose_or_tight_and_major_when_far_below(
    box: list[float], expected: str | None, severity: Severity | None
) -> None:
    reference = Dataset(
        Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 10, 10]]),
        Images.create(id=[1]),
        Taxonomy.from_names(["car"]),
    )
    other = Annotations.create(image_id=[1], class_id=[1], bbox=[box])
    defects, _ = classify_defects(reference, other)
    assert defects.names() == ([] if expected is None else [expected])
    if severity is not None:
        assert defects.severity.tolist() == [list(Severity).index(severity)]


def test_known_noise_is_counted_exactly() -> None:
    reference = generate_dataset(150, seed=2)
    noisy = perturb(reference, NoiseModel(**{**EXACT, "miss_base": 0.1}), seed=3)
    defects, exposure = classify_defects(reference, noisy.annotations)
    assert defects.counts()["missing"] == int(noisy.missed.sum())
    assert len(defects) == int(noisy.missed.sum())
    assert len(exposure) == len(reference.annotations)


def test_injected_duplicates_are_found() -> None:
    reference = generate_dataset(150, seed=2)
    noise = NoiseModel(**{**EXACT, "duplicate_probability": 0.05, "duplicate_jitter": 0.03})
    noisy = perturb(reference, noise, seed=3)
    counts = classify_defects(reference, noisy.annotations)[0].counts()
    injected = int(noisy.duplicate.sum())
    assert injected > 50
    assert counts["duplicate"] + counts["extra"] == injected
    assert counts["duplicate"] >= 0.95 * injected


def test_defect_table_accepts_names_or_codes_and_refuses_unknown_types() -> None:
    by_name = Defects.create(["wrong_class", "keypoint_error"], [1, 2], [1, 1], [5, 6])
    by_code = Defects.create(
        [DEFECT_TYPES.index(DefectType.WRONG_CLASS), DEFECT_TYPES.index(DefectType.KEYPOINT_ERROR)],
        [1, 2],
        [1, 1],
        [5, 6],
    )
    assert by_name.type.tolist() == by_code.type.tolist()
    assert [list(Severity)[s] for s in by_name.severity.tolist()] == [
        DEFAULT_SEVERITY[DefectType.WRONG_CLASS],
        DEFAULT_SEVERITY[DefectType.KEYPOINT_ERROR],
    ]
    with pytest.raises(ValueError, match="unknown type"):
        Defects.create(["sloppy"], [1], [1], [1])
    with pytest.raises(ValueError, match="annotator_id"):
        Defects.create(["extra"], [1, 2], [1], [1])


def test_defect_rates_match_hand_computed_counts() -> None:
    images = Images.create(id=[1, 2, 3], scene_type=["urban", "urban", "highway"])
    # annotator 1: 6 objects audited on image 1 (2 missing, 1 loose), annotator 2: 4 on
    # image 3 (1 extra); annotator 3: 2 on image 2, no defects
    exposure = Exposure.create(
        [1] * 6 + [2] * 4 + [3] * 2,
        [1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 1, 1],
        [1] * 6 + [3] * 4 + [2] * 2,
    )
    defects = Defects.create(
        ["missing", "missing", "loose_geometry", "extra"], [1, 1, 1, 2], [1, 2, 2, 2], [1, 1, 1, 3]
    )
    rates = defect_rates(
        defects,
        exposure,
        taxonomy=Taxonomy.from_names(["car", "bus"]),
        images=images,
        objects_per_image=np.array([12, 2, 40]),
        cohort_of={1: "crowd", 2: "crowd", 3: "managed"},
    )
    overall = rates.overall
    assert (overall["exposure"], overall["defects"], overall["rate"]) == (12, 4, round(4 / 12, 6))
    assert overall["by_severity"] == {"critical": 0, "major": 3, "minor": 1}
    by_annotator = {r["annotator_id"]: r for r in rates.by_annotator}
    assert by_annotator[1]["rate"] == 0.5
    assert by_annotator[1]["by_type"]["missing"] == {"count": 2, "rate": round(2 / 6, 6)}
    assert by_annotator[2]["by_type"]["extra"]["rate"] == 0.25
    assert by_annotator[3]["rate"] == 0.0
    assert by_annotator[3]["cohort"] == "managed"
    cohorts = {r["cohort"]: r for r in rates.by_cohort}
    assert set(cohorts) == {"crowd", "managed"}
    assert (cohorts["crowd"]["exposure"], cohorts["crowd"]["defects"]) == (10, 4)
    assert cohorts["crowd"]["by_type"]["missing"]["rate"] == 0.2
    classes = {r["name"]: r for r in rates.by_class}
    assert (classes["car"]["exposure"], classes["car"]["defects"]) == (7, 1)
    assert (classes["bus"]["exposure"], classes["bus"]["defects"]) == (5, 3)
    scenes = {r["scene_type"]: r for r in rates.by_scene}
    assert (scenes["urban"]["exposure"], scenes["urban"]["defects"]) == (8, 3)
    assert scenes["highway"]["rate"] == 0.25
    density = {r["bucket"]: r for r in rates.by_density}
    assert (density["11-30"]["exposure"], density["11-30"]["defects"]) == (6, 3)
    assert (density[">30"]["exposure"], density[">30"]["defects"]) == (4, 1)
    assert (density["1-3"]["exposure"], density["1-3"]["defects"]) == (2, 0)
    assert density["0"]["rate"] is None
    document = rates.to_dict()
    assert document["severity"]["invalid_geometry"] == "critical"
    assert list(document) == [
        "severity",
        "overall",
        "by_annotator",
        "by_cohort",
        "by_class",
        "by_scene",
        "by_density",
    ]


def test_biased_annotators_are_named_with_the_right_sign() -> None:
    reference = generate_dataset(250, seed=11)
    careful = NoiseModel(swap_probability=0.0)
    pool = generate_pool(
        reference,
        [
            careful,
            NoiseModel(bias=0.12, swap_probability=0.0),
            NoiseModel(bias=-0.1, swap_probability=0.0),
        ],
        seed=12,
    )
    hints = [h for h in root_causes(compare(reference, pool)) if h["kind"] == "biased_annotator"]
    named = {h["subject"]: h["evidence"]["direction"] for h in hints}
    assert named == {2: "loose", 3: "tight"}
    loose = next(h for h in hints if h["subject"] == 2)
    assert loose["evidence"]["mean_log_size_ratio"] > 0.05
    assert "loose" in loose["guideline"] and "annotator 2" in loose["guideline"]
    # the loose annotator's defects are loose geometry, the tight one's tight geometry
    defects, exposure = classify_defects(reference, pool)
    rates = {r["annotator_id"]: r["by_type"] for r in defect_rates(defects, exposure).by_annotator}
    assert rates[2]["loose_geometry"]["count"] > 10 * rates[2]["tight_geometry"]["count"]
    assert rates[3]["tight_geometry"]["count"] > 10 * rates[3]["loose_geometry"]["count"]


def test_a_confusable_pair_with_injected_swaps_is_named() -> None:
    reference = generate_dataset(300, seed=21)
    taxonomy = reference.taxonomy
    car, truck = taxonomy.by_name("car").id, taxonomy.by_name("truck").id
    noise = NoiseModel(swap_probability=0.2, confusable={car: truck, truck: car})
    other = perturb(reference, noise, seed=22).annotations
    hints = [h for h in root_causes(compare(reference, other)) if h["kind"] == "confused_pair"]
    assert [sorted(h["subject"]) for h in hints] == [["car", "truck"]]
    evidence = hints[0]["evidence"]
    assert 0.12 < evidence["share"] < 0.28
    assert evidence["reverse_share"] > 0.1
    assert "'car'" in hints[0]["guideline"] and "'truck'" in hints[0]["guideline"]
    counts = classify_defects(reference, other)[0].counts()
    assert counts["wrong_class"] > 0.1 * int(
        np.isin(reference.annotations.class_id, [car, truck]).sum()
    )


def test_no_confused_pair_below_the_share() -> None:
    reference = generate_dataset(200, seed=21)
    other = perturb(reference, NoiseModel(swap_probability=0.01), seed=22).annotations
    hints = root_causes(compare(reference, other))
    assert not [h for h in hints if h["kind"] == "confused_pair"]


def _drop_on_dense_images(reference: Dataset, other: Annotations, share: float) -> Annotations:
    """Drop ``share`` of the labels on images holding more than 30 reference objects."""
    per_image = objects_per_image(reference.annotations, reference.images)
    dense = reference.images.id[per_image > 30]
    rng = np.random.default_rng(0)
    drop = np.isin(other.image_id, dense) & (rng.random(len(other)) < share)
    return other[~drop]


def test_misses_injected_in_dense_images_are_a_density_climb() -> None:
    reference = generate_dataset(400, seed=31)
    clean = perturb(reference, NoiseModel(**{**EXACT, "jitter": 0.02}), seed=32).annotations
    other = _drop_on_dense_images(reference, clean, 0.2)
    hints = [h for h in root_causes(compare(reference, other)) if h["kind"] == "density_miss_climb"]
    assert len(hints) == 1
    evidence = hints[0]["evidence"]
    assert (evidence["sparse_bucket"], evidence["dense_bucket"]) == ("1-3", ">30")
    assert evidence["from_bucket"] == ">30"
    rates = {b["bucket"]: b["missed_rate"] for b in evidence["buckets"]}
    assert rates["1-3"] == 0.0 and 0.15 < rates[">30"] < 0.25
    assert ">30" in hints[0]["guideline"]
    # the same labels without the injected misses: no climb
    assert not [
        h for h in root_causes(compare(reference, clean)) if h["kind"] == "density_miss_climb"
    ]


def test_classes_below_the_agreement_floor_are_named() -> None:
    reference = generate_dataset(300, seed=41)
    taxonomy = reference.taxonomy
    a = perturb(reference, NoiseModel(), seed=1, annotator_id=1).annotations
    smoke = taxonomy.by_name("smoke").id
    only = reference.replace(
        annotations=reference.annotations[reference.annotations.class_id == smoke]
    )
    b_rest = perturb(reference, NoiseModel(), seed=2, annotator_id=2).annotations
    b_smoke = perturb(only, NoiseModel(jitter=0.4), seed=3, annotator_id=2).annotations
    b = Annotations.concat(
        [b_rest[b_rest.class_id != smoke], b_smoke.replace(id=b_smoke.id + 10_000_000)]
    )
    agreement = geometry_agreement([a, b], taxonomy, n_resamples=0)
    comparison = compare(reference.replace(annotations=a), b)
    hints = root_causes(comparison, agreement=agreement, min_support=20)
    named = {h["subject"]: h["evidence"] for h in hints if h["kind"] == "low_agreement_class"}
    assert "smoke" in named
    assert named["smoke"]["metric"] == "krippendorff_alpha"
    assert named["smoke"]["value"] < 0.70
    assert "car" not in named
    # a plain mapping works too
    hints = root_causes(comparison, agreement={"car": 0.9, "bus": 0.41}, agreement_metric="kappa")
    names = [h["subject"] for h in hints if h["kind"] == "low_agreement_class"]
    assert names == ["bus"]


def test_root_causes_of_a_clean_comparison_are_empty() -> None:
    reference = generate_dataset(100, seed=5)
    exact = perturb(reference, NoiseModel(**EXACT), seed=6).annotations
    assert root_causes(compare(reference, exact)) == []


def _keypoints(points: list[list[float]], box: list[float]) -> Annotations:
    values = np.array(points, dtype=np.float64).reshape(-1, 3)
    return Annotations.create(
        image_id=[1],
        class_id=[1],
        bbox=[box],
        area=[400.0],
        kind=[Kind.KEYPOINTS],
        keypoints=Ragged(values, np.array([0, len(points)])),
    )


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        pytest.param(4.0, [], id="OKS 0.61, above the loose 0.5"),
        pytest.param(6.0, ["keypoint_error"], id="OKS 0.32, below it"),
    ],
)
def test_a_skeleton_below_its_oks_threshold_is_a_keypoint_error(
    shift: float, expected: list[str]
) -> None:
    reference = Dataset(
        _keypoints([[10, 10, 2], [30, 30, 2]], [10, 10, 30, 30]),
        Images.create(id=[1]),
        Taxonomy.from_names(["person"]),
    )
    other = _keypoints([[10 + shift, 10, 2], [30, 30 + shift, 2]], [10, 10, 30 + shift, 30 + shift])
    oks = functools.partial(pair_iou, sigmas=np.array([0.1, 0.1]))
    defects, _ = classify_defects(reference, other, pair_iou=oks)
    assert defects.names() == expected
    if expected:
        assert defects.severity.tolist() == [list(Severity).index(Severity.MAJOR)]
