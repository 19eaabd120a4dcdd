from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.formats.coco import write_coco
from labelgate.spec import load_spec

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spec.toml"


# --- labelgate spec check ------------------------------------------------------------------


def test_spec_check_accepts_the_example() -> None:
    result = runner.invoke(app, ["spec", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "street-scenes" in result.stdout and "12 classes" in result.stdout


def test_spec_check_json_summarizes_the_valid_spec() -> None:
    result = runner.invoke(app, ["spec", "check", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    spec = load_spec(EXAMPLE)
    assert document["valid"] is True
    assert document["digest"] == spec.digest()
    assert document["taxonomy_digest"] == spec.taxonomy_digest()
    assert [c["name"] for c in document["classes"]] == [c.name for c in spec.classes]
    assert document["classes"][1]["scene_thresholds"] == {"highway": 0.8}
    assert document["gates"]["gold_set_size"] == 500
    assert [p["cohort"] for p in document["pools"]] == ["crowd", "managed"]


def test_spec_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "spec.toml"
    bad.write_text(
        EXAMPLE.read_text()
        .replace("iou_threshold = 0.85", "iou_threshold = 0.95")
        .replace('classes = ["traffic light"]', 'classes = ["traffic lamp"]')
        .replace("defect_limit = 0.02", "defect_limit = 2")
    )
    result = runner.invoke(app, ["spec", "check", str(bad), "--json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False
    locations = [p["location"] for p in document["problems"]]
    assert locations == [
        "classes[2].iou_threshold",
        "attributes[2].classes[0]",
        "gates.defect_limit",
    ]

    text = runner.invoke(app, ["spec", "check", str(bad)])
    assert text.exit_code == 2
    assert "spec.toml: classes[2].iou_threshold: tier tight allows IoU 0.75-0.9" in text.output


def test_spec_check_reports_toml_syntax_errors_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('[project]\nname = "x\n')
    result = runner.invoke(app, ["spec", "check", str(bad), "--json"])
    assert result.exit_code == 2
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["location"].startswith("line 2, column ")
    assert "invalid TOML" in problem["message"]


def test_spec_check_on_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 2


# --- labelgate compare --spec --------------------------------------------------------------


@pytest.fixture(scope="module")
def jittered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated reference and an annotator whose boxes are jittered (no misses, no swaps)."""
    folder = tmp_path_factory.mktemp("compare-spec")
    reference = generate_dataset(200, seed=11)
    noise = NoiseModel(
        miss_base=0.0,
        miss_small_extra=0.0,
        jitter=0.08,
        swap_probability=0.0,
        duplicate_probability=0.0,
        false_positives_per_image=0.0,
    )
    other = perturb(reference, noise, seed=12)
    write_coco(reference, folder / "ref.json")
    write_coco(reference.replace(annotations=other.annotations), folder / "other.json")
    return folder / "ref.json", folder / "other.json"


def _compare(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["compare", *args, "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _per_class(document: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = document["per_class"]
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


def test_compare_with_spec_holds_each_class_to_its_spec_threshold(
    jittered: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, other = jittered
    # the example's thresholds, with person tightened from 0.75 to 0.9 (tight tier's top)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        EXAMPLE.read_text()
        .replace('tier = "tight"\niou_threshold = 0.75', 'tier = "tight"\niou_threshold = 0.9', 1)
        .replace("sla = { iou_threshold = 0.8,", "sla = { iou_threshold = 0.9,")
    )
    loose = _per_class(_compare(str(ref), str(other), "--iou-threshold", "0.5"))
    default = _per_class(_compare(str(ref), str(other)))
    document = _compare(str(ref), str(other), "--spec", str(spec_file))
    with_spec = _per_class(document)
    spec = load_spec(spec_file)
    assert document["iou_threshold"] == "per-object"  # class thresholds, scene overrides
    for name, row in with_spec.items():
        assert row["iou_threshold"] == spec.class_by_name(name).iou_threshold
    # a tight class loses matches against 0.5; the tightened one loses more than at its
    # file threshold
    for name in ("person", "traffic sign"):
        assert with_spec[name]["ref_count"] == loose[name]["ref_count"] > 0
        assert with_spec[name]["matched"] < loose[name]["matched"]
    assert with_spec["person"]["matched"] < default["person"]["matched"]
    # a loose class is matched as at 0.5
    assert with_spec["smoke"]["matched"] == loose["smoke"]["matched"]
    note = document["spec"]
    assert isinstance(note, dict)
    assert note["digest"] == spec.digest()
    assert note["scene_thresholds_applied"] is True  # person on highways: 0.8


def test_compare_refuses_both_threshold_and_spec(jittered: tuple[Path, Path]) -> None:
    ref, other = jittered
    result = runner.invoke(
        app,
        ["compare", str(ref), str(other), "--iou-threshold", "0.5", "--spec", str(EXAMPLE)],
    )
    assert result.exit_code == 2
    assert "not both" in result.output


def test_compare_refuses_a_spec_without_the_reference_classes(
    jittered: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, other = jittered
    start = EXAMPLE.read_text().index("[[classes]]\nid = 12")
    end = EXAMPLE.read_text().index("[[attributes]]")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        EXAMPLE.read_text()[:start] + EXAMPLE.read_text()[end:].replace('classes = ["smoke"]\n', "")
    )
    load_spec(spec_file)  # valid on its own
    result = runner.invoke(
        app, ["compare", str(ref), str(other), "--spec", str(spec_file), "--json"]
    )
    assert result.exit_code == 2
    assert "does not define" in json.loads(result.stdout)["error"]


def test_compare_refuses_a_spec_that_names_a_class_differently(
    jittered: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, other = jittered
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(EXAMPLE.read_text().replace('name = "dog"', 'name = "animal"'))
    result = runner.invoke(
        app, ["compare", str(ref), str(other), "--spec", str(spec_file), "--json"]
    )
    assert result.exit_code == 2
    assert "'dog' here but 'animal'" in json.loads(result.stdout)["error"]


def test_compare_with_an_invalid_spec_exits_2(jittered: tuple[Path, Path], tmp_path: Path) -> None:
    ref, other = jittered
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('[project]\nname = "x"\n')
    result = runner.invoke(
        app, ["compare", str(ref), str(other), "--spec", str(spec_file), "--json"]
    )
    assert result.exit_code == 2
    assert "classes: required key missing" in json.loads(result.stdout)["error"]
