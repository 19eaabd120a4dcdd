from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_info_json_counts_the_coco_subset(shared_data: Path) -> None:
    path = shared_data / "faster-coco-eval/cocoapi/instances_val2014_100.json"
    code, out = run("info", str(path), "--json")
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["format", "images", "annotations", "per_class", "objects_per_image"]
    assert (document["format"], document["images"], document["annotations"]) == ("coco", 100, 839)
    raw = json.loads(path.read_text())
    names = {c["id"]: c["name"] for c in raw["categories"]}
    expected: dict[str, int] = {}
    for a in raw["annotations"]:
        expected[names[a["category_id"]]] = expected.get(names[a["category_id"]], 0) + 1
    assert {k: v for k, v in document["per_class"].items() if v} == expected
    per_image = [sum(a["image_id"] == i["id"] for a in raw["annotations"]) for i in raw["images"]]
    stats = document["objects_per_image"]
    assert stats["max"] == max(per_image) and stats["min"] == min(per_image)
    assert stats["mean"] == round(sum(per_image) / len(per_image), 4)
    assert sum(stats["buckets"].values()) == 100


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1]},
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    code, out = run("validate", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False and report["annotations"] == 1
    assert [(p["record"], p["field"]) for p in report["problems"]] == [
        ("annotations[0] (id=1)", "bbox"),
        ("annotations[2] (id=3)", "category_id"),
    ]


def test_unreadable_input_exits_2_with_a_json_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('{"images": [')
    code, out = run("info", str(path), "--json")
    assert code == 2
    assert "invalid JSON" in json.loads(out)["error"]
    code, _ = run("info", str(tmp_path / "missing.json"))
    assert code == 2


def test_convert_reports_what_the_target_drops_and_refuses_to_overwrite(
    shared_data: Path, tmp_path: Path
) -> None:
    coco = shared_data / "datumaro-assets/coco_dataset/coco_instances"
    source = coco / "annotations/instances_val.json"
    target = tmp_path / "out"
    code, out = run("convert", str(source), str(target), "--to", "voc", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["format"] == "voc" and report["annotations"] == 2
    dropped = {d["what"]: d["count"] for d in report["dropped"]}
    assert dropped  # a polygon and a crowd mask cannot stay what they are in VOC
    code, _ = run("convert", str(source), str(target), "--to", "voc")
    assert code == 2
    code, _ = run("convert", str(source), str(target), "--to", "voc", "--overwrite")
    assert code == 0


@pytest.mark.slow
def test_demo_runs_a_program_and_round_trips_every_format(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    code, out = run("demo", "--images", "40", "--out", str(out_dir), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["ok"] is True
    formats = [r["format"] for r in result["formats"]["roundtrips"]]
    assert formats == ["coco", "voc", "yolo", "cvat", "labelstudio"]
    boxes = result["formats"]["reference"]["annotations"]
    assert all(r["annotations_read"] == boxes for r in result["formats"]["roundtrips"])
    assert 0 < result["formats"]["annotator"]["missed_rate"] < 0.2

    # the program: files on disk, every batch delivered, report.json equal to the database
    report = json.loads((out_dir / "report.json").read_text())
    assert (out_dir / "labelgate.db").is_file()
    assert "<table>" in (out_dir / "report.html").read_text()
    assert set(report) >= {"stages", "quality", "defects", "cost"}
    assert all(b["state"] == "delivered" for b in report["batches"])
    assert any(not s["passed"] and s["outcome"] == "rework" for s in report["stages"])
    for stage in report["stages"]:
        assert set(stage) >= {"name", "gate", "value", "threshold", "passed"}
    from labelgate.reports.program_report import build_report
    from labelgate.store.db import Database

    db = Database(f"sqlite:///{out_dir / 'labelgate.db'}")
    again = build_report(db)
    db.dispose()
    assert again["stages"] == report["stages"]
    assert again["defects"] == report["defects"]
    assert report["audit"]["ok"] is True

    code, _ = run("demo", "--images", "40", "--out", str(out_dir))
    assert code == 2  # an earlier demo is there and --overwrite was not given


def test_quickstart_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.argv = ["quickstart.py", str(tmp_path)]
    runpy.run_path(str(REPO / "examples/quickstart.py"), run_name="__main__")
    assert "small people" in capsys.readouterr().out


def test_a_folder_holding_one_export_file_is_read_as_that_file(shared_data: Path) -> None:
    gts = shared_data / "review-object-detection-metrics/database/gts"
    counts = {}
    for folder in ("coco_format_v1", "coco_format_v2", "cvat_format", "pascalvoc_format"):
        code, out = run("info", str(gts / folder), "--json")
        assert code == 0, out
        document = json.loads(out)
        counts[folder] = (document["format"], document["images"], document["annotations"])
    # the same 100 VOC images' ground truth, written by four tools
    assert counts == {
        "coco_format_v1": ("coco", 100, 273),
        "coco_format_v2": ("coco", 100, 273),
        "cvat_format": ("cvat", 100, 273),
        "pascalvoc_format": ("voc", 100, 273),
    }


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("bad.json", '{"images": [{"id": 1, "width": -5, "height": 4}]}', id="coco"),
        pytest.param(
            "bomb.xml",
            '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;">]>'
            "<annotations><version>1.1</version><image id='0' name='a' width='2' height='2'>"
            "<tag label='&y;'/></image></annotations>",
            id="cvat-entity-bomb",
        ),
    ],
)
def test_a_failed_conversion_writes_nothing(tmp_path: Path, name: str, content: str) -> None:
    source = tmp_path / name
    source.write_text(content)
    target = tmp_path / "out.json"
    code, _ = run("convert", str(source), str(target), "--to", "coco")
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_yolo_labels_without_images_take_the_given_size(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("car\nbus\n")
    (tmp_path / "frame.1.txt").write_text("1 0.5 0.5 0.25 0.5\n0 0.1 0.2 0.2 0.2\n")
    code, out = run("info", str(tmp_path), "--json")
    assert code == 2
    assert "--image-size" in json.loads(out)["error"]
    target = tmp_path / "out.json"
    code, _ = run("convert", str(tmp_path), str(target), "--to", "coco", "--image-size", "80x60")
    assert code == 0
    document = json.loads(target.read_text())
    assert document["images"] == [{"id": 1, "file_name": "frame.1.jpg", "width": 80, "height": 60}]
    # centre (40, 30), 20 x 30 -> x 30, y 15; centre (8, 12), 16 x 12 -> x 0, y 6
    assert [a["bbox"] for a in document["annotations"]] == [[30, 15, 20, 30], [0, 6, 16, 12]]
    code, _ = run("info", str(target), "--image-size", "80x60")
    assert code == 2  # COCO stores its sizes: an image size makes no sense there


def test_validate_of_an_unreadable_file_lists_why_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('{"images": [')
    code, out = run("validate", str(path), "--json")
    assert code == 2
    report = json.loads(out)
    assert report["valid"] is False and report["images"] is None
    assert [p["file"] for p in report["problems"]] == [str(path)]
    assert "invalid JSON" in report["problems"][0]["message"]
