from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core import ClassInfo, Taxonomy
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.formats.coco import write_coco

runner = CliRunner()


def test_compare_json_has_the_documented_shape_and_known_counts(tmp_path: Path) -> None:
    reference = generate_dataset(120, seed=3)
    exact = NoiseModel(
        miss_base=0.1,
        miss_small_extra=0.0,
        jitter=0.0,
        swap_probability=0.0,
        duplicate_probability=0.0,
        false_positives_per_image=0.0,
    )
    noisy = perturb(reference, exact, seed=4)
    write_coco(reference, tmp_path / "ref.json")
    write_coco(reference.replace(annotations=noisy.annotations), tmp_path / "other.json")
    result = runner.invoke(
        app, ["compare", str(tmp_path / "ref.json"), str(tmp_path / "other.json"), "--json"]
    )
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert list(document) == [
        "iou_threshold",
        "overall",
        "per_class",
        "confusion",
        "by_scene",
        "by_density",
        "by_annotator",
    ]
    assert document["iou_threshold"] == "per-class"
    overall = document["overall"]
    assert overall["missed"] == int(noisy.missed.sum())
    assert overall["matched"] == len(noisy.annotations)
    assert overall["extra"] == 0 and overall["precision"] == 1.0
    names = [row["name"] for row in document["per_class"]]
    assert names == list(reference.taxonomy.names)
    assert [row["iou_threshold"] for row in document["per_class"]] == [
        c.threshold for c in reference.taxonomy.classes
    ]
    assert document["by_annotator"][0]["annotator_id"] == 1


def test_compare_refuses_classes_the_reference_does_not_know(tmp_path: Path) -> None:
    reference = generate_dataset(5, seed=1)
    write_coco(reference, tmp_path / "ref.json")
    other = reference.annotations.replace(class_id=reference.annotations.class_id + 100)
    taxonomy = Taxonomy(tuple(ClassInfo(c + 100, f"x{c}") for c in reference.taxonomy.ids.tolist()))
    write_coco(reference.replace(annotations=other, taxonomy=taxonomy), tmp_path / "other.json")
    result = runner.invoke(
        app, ["compare", str(tmp_path / "ref.json"), str(tmp_path / "other.json"), "--json"]
    )
    assert result.exit_code == 2
    assert "does not define" in json.loads(result.stdout)["error"]
