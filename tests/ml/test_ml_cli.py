from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.formats.coco import write_coco
from labelgate.ml.synthetic import labels_with_errors, model_predictions

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    folder = tmp_path_factory.mktemp("ml_cli")
    inj = labels_with_errors(150, seed=2, error_rate=0.005)
    pred = model_predictions(inj.truth, seed=2).annotations
    write_coco(inj.labels, folder / "labels.json")
    write_coco(inj.labels.replace(annotations=pred), folder / "pred.json", results=True)
    return folder / "labels.json", folder / "pred.json", inj


def test_errors_json_has_the_contract_keys_and_every_image(
    files: tuple[Path, Path, object],
) -> None:
    labels, pred, _ = files
    result = runner.invoke(
        app, ["errors", "--labels", str(labels), "--predictions", str(pred), "--top", "5", "--json"]
    )
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert list(document) == ["errors", "images", "total_errors", "thresholds"]
    assert len(document["errors"]) == 5 < document["total_errors"]
    for error in document["errors"]:
        assert list(error) == ["image_id", "annotation_id", "type", "score", "prediction_id"]
        assert error["type"] in {
            "overlooked", "swapped_class", "badly_located", "duplicate", "attribute_inconsistent"
        }  # fmt: skip
        assert (error["annotation_id"] is None) == (error["type"] == "overlooked")
    scores = [e["score"] for e in document["errors"]]
    assert scores == sorted(scores, reverse=True)
    images = document["images"]
    assert sorted(row["image_id"] for row in images) == list(range(1, 151))
    assert [list(row) for row in images[:1]] == [["image_id", "score"]]
    image_scores = [row["score"] for row in images]
    assert image_scores == sorted(image_scores, reverse=True)


def test_errors_without_json_prints_a_table(files: tuple[Path, Path, object]) -> None:
    labels, pred, _ = files
    result = runner.invoke(
        app, ["errors", "--labels", str(labels), "--predictions", str(pred), "--top", "3"]
    )
    assert result.exit_code == 0
    assert "suspected label errors" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--thresholds", "1=high"], "CLASS=T"),
        (["--predictions-missing"], None),
    ],
)
def test_errors_bad_input_exits_2(
    files: tuple[Path, Path, object], extra: list[str], message: str | None
) -> None:
    labels, pred, _ = files
    if message is None:  # a predictions file that does not exist
        args = ["errors", "--labels", str(labels), "--predictions", str(pred) + ".nope", "--json"]
    else:
        args = ["errors", "--labels", str(labels), "--predictions", str(pred), *extra, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert "error" in document
    if message:
        assert message in document["error"]


def test_select_json_picks_budget_images_with_scores(
    files: tuple[Path, Path, object], tmp_path: Path
) -> None:
    _, pred, _ = files
    result = runner.invoke(
        app, ["select", "--predictions", str(pred), "--budget", "7", "--strategy", "margin",
              "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert list(document) == ["strategy", "aggregate", "budget", "image_ids", "scores"]
    assert len(document["image_ids"]) == 7 == len(set(document["image_ids"]))
    ranked = [row["image_id"] for row in document["scores"]]
    assert document["image_ids"] == ranked[:7]  # uncertainty strategies pick by score
    # embeddings: .npy rows in ascending image id order
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.normal(size=(len(ranked), 8)))
    result = runner.invoke(
        app, ["select", "--predictions", str(pred), "--budget", "4", "--strategy", "diversity",
              "--embeddings", str(tmp_path / "e.npy"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout
    assert len(json.loads(result.stdout)["image_ids"]) == 4
    np.savez(tmp_path / "e.npz", image_id=np.array(sorted(ranked)), embedding=np.eye(len(ranked)))
    result = runner.invoke(
        app, ["select", "--predictions", str(pred), "--budget", "2", "--strategy", "hybrid",
              "--embeddings", str(tmp_path / "e.npz"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout


def test_select_bad_input_exits_2(files: tuple[Path, Path, object], tmp_path: Path) -> None:
    _, pred, _ = files
    result = runner.invoke(
        app, ["select", "--predictions", str(pred), "--budget", "3", "--strategy", "coin",
              "--json"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "expected one of" in json.loads(result.stdout)["error"]
    np.save(tmp_path / "wrong.npy", np.zeros((3, 2)))
    result = runner.invoke(
        app, ["select", "--predictions", str(pred), "--budget", "3", "--strategy", "diversity",
              "--embeddings", str(tmp_path / "wrong.npy"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "one row per image" in json.loads(result.stdout)["error"]
