from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core import Dataset
from labelgate.core.generate import (
    DEFAULT_CLASSES,
    NoiseModel,
    SceneConfig,
    generate_dataset,
    generate_pool,
    perturb,
)
from labelgate.formats.coco import write_coco

runner = CliRunner()

EXACT = {
    "miss_base": 0.0,
    "miss_small_extra": 0.0,
    "swap_probability": 0.0,
    "duplicate_probability": 0.0,
    "false_positives_per_image": 0.0,
}

SPEC = """
scene_types = ["highway", "suburban", "urban"]

[project]
name = "calibration-test"

[[classes]]
id = 1
name = "car"
tier = "standard"
iou_threshold = 0.7

[[classes]]
id = 2
name = "person"
tier = "tight"
iou_threshold = {person}
sla = {{ iou_threshold = {person_sla} }}

[[edge_cases]]
id = "EC1"
rule = "Label reflections? No."
"""


def _two_annotators(tmp_path: Path, jitter: float = 0.02) -> tuple[Dataset, Path, Path]:
    # two classes, car (id 1) and person (id 2), as in the spec above
    reference = generate_dataset(150, seed=4, config=SceneConfig(classes=DEFAULT_CLASSES[:2]))
    assert reference.taxonomy.names == ("car", "person")
    a = perturb(reference, NoiseModel(jitter=jitter, **EXACT), seed=1, annotator_id=1)
    b = perturb(reference, NoiseModel(jitter=jitter, **EXACT), seed=2, annotator_id=2)
    write_coco(reference.replace(annotations=a.annotations), tmp_path / "a.json")
    write_coco(reference.replace(annotations=b.annotations), tmp_path / "b.json")
    return reference, tmp_path / "a.json", tmp_path / "b.json"


def _spec(tmp_path: Path, person: float, person_sla: float) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(person=person, person_sla=person_sla))
    return path


def test_calibrate_json_reports_each_class_and_exits_0_when_every_threshold_is_met(
    tmp_path: Path,
) -> None:
    _, a, b = _two_annotators(tmp_path)
    result = runner.invoke(app, ["calibrate", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["false_precision"] == []
    assert [row["name"] for row in document["per_class"]] == ["car", "person"]
    assert document["pairs"] == sum(row["pairs"] for row in document["per_class"]) > 100
    assert {row["scene_type"] for row in document["per_class_scene"]} <= {
        "highway",
        "suburban",
        "urban",
    }
    assert document["files"] == [str(a), str(b)]
    assert "spec" not in document


def test_calibrate_exits_1_when_the_spec_demands_false_precision(tmp_path: Path) -> None:
    _, a, b = _two_annotators(tmp_path, jitter=0.05)
    spec = _spec(tmp_path, person=0.9, person_sla=0.95)
    result = runner.invoke(app, ["calibrate", str(a), str(b), "--spec", str(spec), "--json"])
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    person = next(row for row in document["per_class"] if row["name"] == "person")
    assert person["iou_threshold"] == 0.9 and person["sla_iou"] == 0.95
    assert person["threshold_met"] is False and person["sla_met"] is False
    assert person["recommended_iou_threshold"] < 0.9
    assert person["cost"]["change_multiple"] < 1.0
    # the spec prices boxes at 0.10 USD: the tier factor applies to it
    assert person["cost"]["unit_price_usd"] == round(0.10 * person["cost"]["current_multiplier"], 6)
    assert {"name": "person", "scene_type": None} in document["false_precision"]
    assert document["spec"]["project"] == "calibration-test"
    car = next(row for row in document["per_class"] if row["name"] == "car")
    assert car["false_precision"] is False


def test_calibrate_renders_a_table_and_flags_false_precision(tmp_path: Path) -> None:
    _, a, b = _two_annotators(tmp_path, jitter=0.05)
    spec = _spec(tmp_path, person=0.9, person_sla=0.9)
    result = runner.invoke(app, ["calibrate", str(a), str(b), "--spec", str(spec)])
    assert result.exit_code == 1
    assert "cannot meet their threshold" in result.stdout and "person" in result.stdout


def test_calibrate_bad_input_exits_2(tmp_path: Path) -> None:
    _, a, _ = _two_annotators(tmp_path)
    result = runner.invoke(app, ["calibrate", str(a), str(tmp_path / "missing.json"), "--json"])
    assert result.exit_code == 2
    assert "error" in json.loads(result.stdout)
    bad_spec = tmp_path / "bad.toml"
    bad_spec.write_text("[project]\n")
    result = runner.invoke(app, ["calibrate", str(a), str(a), "--spec", str(bad_spec), "--json"])
    assert result.exit_code == 2


def test_defects_json_names_the_loose_annotator_and_counts_by_type(tmp_path: Path) -> None:
    reference = generate_dataset(200, seed=7)
    pool = generate_pool(reference, [NoiseModel(), NoiseModel(bias=0.15)], seed=8)
    write_coco(reference, tmp_path / "ref.json")
    write_coco(reference.replace(annotations=pool), tmp_path / "pool.json")
    result = runner.invoke(
        app,
        [
            "defects",
            str(tmp_path / "ref.json"),
            str(tmp_path / "pool.json"),
            "--cohort",
            "1=crowd",
            "--cohort",
            "2=managed",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert list(document) == [
        "reference",
        "other",
        "iou_threshold",
        "counts",
        "severity",
        "overall",
        "by_annotator",
        "by_cohort",
        "by_class",
        "by_scene",
        "by_density",
        "root_causes",
    ]
    assert document["overall"]["defects"] == sum(document["counts"].values())
    assert {r["cohort"] for r in document["by_cohort"]} == {"crowd", "managed"}
    biased = [h for h in document["root_causes"] if h["kind"] == "biased_annotator"]
    assert [(h["subject"], h["evidence"]["direction"]) for h in biased] == [(2, "loose")]
    rates = {r["annotator_id"]: r for r in document["by_annotator"]}
    assert (
        rates[2]["by_type"]["loose_geometry"]["count"]
        > 5 * rates[1]["by_type"]["loose_geometry"]["count"]
    )


def test_defects_renders_hints_and_refuses_a_bad_cohort(tmp_path: Path) -> None:
    reference = generate_dataset(60, seed=7)
    other = perturb(reference, NoiseModel(bias=0.2), seed=8).annotations
    write_coco(reference, tmp_path / "ref.json")
    write_coco(reference.replace(annotations=other), tmp_path / "other.json")
    args = ["defects", str(tmp_path / "ref.json"), str(tmp_path / "other.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stdout
    assert "root causes" in result.stdout and "loose" in result.stdout
    result = runner.invoke(app, [*args, "--cohort", "crowd", "--json"])
    assert result.exit_code == 2
    assert "ANNOTATOR_ID=COHORT" in json.loads(result.stdout)["error"]


def test_defects_refuses_classes_the_reference_does_not_know(tmp_path: Path) -> None:
    reference = generate_dataset(5, seed=1)
    write_coco(reference, tmp_path / "ref.json")
    shifted = reference.annotations.replace(class_id=reference.annotations.class_id + 100)
    taxonomy = reference.taxonomy.with_classes(
        [
            type(c)(c.id + 100, f"x{c.id}", c.supercategory, c.tier, c.iou_threshold)
            for c in reference.taxonomy.classes
        ]
    )
    write_coco(Dataset(shifted, reference.images, taxonomy), tmp_path / "other.json")
    result = runner.invoke(
        app, ["defects", str(tmp_path / "ref.json"), str(tmp_path / "other.json"), "--json"]
    )
    assert result.exit_code == 2
    assert "does not define" in json.loads(result.stdout)["error"]
