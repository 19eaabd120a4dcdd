"""``labelgate agreement --labels FILE.csv``: JSON, exit codes and error locations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.formats.ratings import read_ratings

runner = CliRunner()

# Krippendorff (2011) worked example, observers A..D x units 1..12, "." = missing
WORKED_EXAMPLE = {
    "A": "1 2 3 3 2 1 4 1 2 . . .",
    "B": "1 2 3 3 2 2 4 1 2 5 . 3",
    "C": ". 3 3 3 2 3 4 2 2 5 1 .",
    "D": "1 2 3 3 2 4 4 1 2 5 1 .",
}


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def write_csv(path: Path, rows: list[tuple[str, str, str]], header: str = "item,annotator,label"):
    path.write_text(header + "\n" + "".join(f"{i},{a},{label}\n" for i, a, label in rows))
    return path


@pytest.fixture
def worked_example(tmp_path: Path) -> Path:
    rows = [
        (f"unit{u + 1}", observer, value)
        for observer, line in WORKED_EXAMPLE.items()
        for u, value in enumerate(line.split())
        if value != "."
    ]
    return write_csv(tmp_path / "worked.csv", rows)


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_worked_example_gives_krippendorffs_published_alpha(worked_example, level, published):
    code, out = run("agreement", "--labels", str(worked_example), "--level", level, "--json")
    assert code == 0
    document = json.loads(out)
    assert round(document["krippendorff_alpha"], 3) == published
    assert document["level"] == level
    assert (document["items"], document["annotators"], document["ratings"]) == (12, 4, 41)
    assert document["categories"] == 5
    assert document["cohen_kappa"] is None
    assert document["cohen_kappa_reason"] == "needs exactly two annotators, got 4"
    assert document["fleiss_kappa"] is None
    assert "same number of ratings" in document["fleiss_kappa_reason"]
    low, high = document["ci"]["krippendorff_alpha"]
    assert low <= document["krippendorff_alpha"] <= high


def test_two_annotators_get_cohens_kappa_equal_to_scikit_learn(tmp_path: Path):
    rng = np.random.default_rng(0)
    names = np.array(["cat", "dog", "bird"])
    a = rng.integers(0, 3, size=100)
    b = np.where(rng.random(100) < 0.7, a, rng.integers(0, 3, size=100))
    rows = [(f"img{i}", "ann", names[a[i]]) for i in range(100)]
    rows += [(f"img{i}", "bob", names[b[i]]) for i in range(100) if i % 10]  # bob skips 10
    path = write_csv(tmp_path / "two.csv", rows)
    code, out = run(
        "agreement", "--labels", str(path), "--bootstrap", "200", "--seed", "3", "--json"
    )
    assert code == 0
    document = json.loads(out)
    common = np.arange(100) % 10 != 0
    expected = cohen_kappa_score(names[a[common]], names[b[common]])
    assert document["cohen_kappa"] == pytest.approx(expected, abs=1e-12)
    assert document["cohen_kappa_reason"] is None
    assert document["fleiss_kappa"] is None  # ten items have one rating
    assert document["percent_agreement"] == pytest.approx(np.mean(a[common] == b[common]))
    assert set(document["ci"]) == {"percent_agreement", "krippendorff_alpha", "cohen_kappa"}
    assert document["bootstrap"] == {"n_resamples": 200, "confidence": 0.95}
    again = json.loads(run("agreement", "--labels", str(path), "--seed", "3", "--json",
                           "--bootstrap", "200")[1])  # fmt: skip
    assert again == document  # seeded


def test_without_bootstrap_there_are_no_intervals(worked_example):
    code, out = run("agreement", "--labels", str(worked_example), "--bootstrap", "0", "--json")
    assert code == 0
    assert json.loads(out)["ci"] == {}


def test_table_output_names_every_statistic(worked_example):
    code, out = run("agreement", "--labels", str(worked_example), "--bootstrap", "50")
    assert code == 0
    for name in ("percent agreement", "Cohen's kappa", "Fleiss' kappa", "Krippendorff's alpha"):
        assert name in out
    assert "0.7434" in out


def test_toy_ysda_answers_from_shared_data(shared_data: Path, tmp_path: Path):
    source = shared_data / "crowd-kit-fixtures" / "toy_ysda_answers.csv"
    with source.open(newline="") as handle:
        rows = [(r["task"], r["worker"], r["label"]) for r in csv.DictReader(handle)]
    path = write_csv(tmp_path / "toy.csv", rows)
    code, out = run("agreement", "--labels", str(path), "--json")
    assert code == 0
    document = json.loads(out)
    tasks = sorted({t for t, _, _ in rows})
    workers = sorted({w for _, w, _ in rows})
    reliability = np.full((len(workers), len(tasks)), np.nan)
    for task, worker, label in rows:
        reliability[workers.index(worker), tasks.index(task)] = label == "yes"
    assert document["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"),
        abs=1e-12,
    )
    assert (document["items"], document["annotators"], document["ratings"]) == (5, 5, 24)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "item,annotator,label\n1,a,x\n1,b,y\n1,a,z\n",
            "worked.csv: line 4: annotator: annotator 'a' rated item '1' again (first on line 2)",
            id="duplicate rating",
        ),
        pytest.param("item,label\n1,x\n", "header lacks column(s) annotator", id="missing column"),
        pytest.param("item,annotator,label\n1,a,\n", "line 2: label: empty", id="empty label"),
        pytest.param("", "empty file", id="empty file"),
        pytest.param("item,annotator,label\n", "line 2: no ratings", id="header only"),
    ],
)
def test_bad_input_exits_2_naming_the_line(tmp_path: Path, content, message):
    path = tmp_path / "worked.csv"
    path.write_text(content)
    code, out = run("agreement", "--labels", str(path), "--json")
    assert code == 2
    assert message in json.loads(out)["error"]


def test_ordinal_level_needs_numbers_and_names_file_line_and_column(tmp_path: Path):
    path = write_csv(tmp_path / "grades.csv", [("1", "a", "3"), ("1", "b", "4"), ("2", "a", "x")])
    code, out = run("agreement", "--labels", str(path), "--level", "ordinal", "--json")
    assert code == 2
    document = json.loads(out)
    assert document["error"] == "grades.csv: line 4: label: expected a finite number for this " \
        "level, got 'x'"  # fmt: skip
    assert (document["record"], document["field"]) == ("line 4", "label")
    assert document["file"] == str(path)


def test_unknown_level_exits_2(worked_example):
    code, _ = run("agreement", "--labels", str(worked_example), "--level", "cardinal", "--json")
    assert code == 2


def test_missing_file_exits_2(tmp_path: Path):
    code, _ = run("agreement", "--labels", str(tmp_path / "nope.csv"), "--json")
    assert code == 2


def test_numeric_labels_are_ordered_by_value_and_spellings_merge(tmp_path: Path):
    path = write_csv(
        tmp_path / "n.csv", [("1", "a", "10"), ("1", "b", "2"), ("2", "a", "2.0"), ("2", "b", "9")]
    )
    ratings = read_ratings(path, numeric=True)
    assert ratings.categories == ("2", "9", "10")
    assert ratings.values is not None and ratings.values.tolist() == [2.0, 9.0, 10.0]
    assert ratings.label_id.tolist() == [2, 0, 0, 1]
    assert ratings.items == ("1", "2") and ratings.annotators == ("a", "b")


def test_string_labels_have_no_values_and_extra_columns_are_ignored(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text("annotator,seconds,label,item\nx,3,dog,i1\ny,4,cat,i1\n")
    ratings = read_ratings(path)
    assert ratings.values is None
    assert ratings.categories == ("cat", "dog")
    assert ratings.label_id.tolist() == [1, 0]
    assert ratings.annotators == ("x", "y")


# --- geometry: labelgate agreement A.json B.json [C.json ...] ---------------------------------


def _write_annotators(tmp_path: Path, jitters: list[float]) -> list[Path]:
    from labelgate.core.dataset import Dataset
    from labelgate.core.generate import NoiseModel, generate_dataset, generate_pool
    from labelgate.formats.coco import write_coco

    dataset = generate_dataset(30, seed=7)
    pool = generate_pool(dataset, [NoiseModel(jitter=j) for j in jitters], seed=1)
    paths = [tmp_path / "reference.json"]
    write_coco(dataset, paths[0])
    for j in range(len(jitters)):
        part = pool[pool.annotator_id == j + 1]
        path = tmp_path / f"annotator{j + 1}.json"
        write_coco(Dataset(part, dataset.images, dataset.taxonomy), path)
        paths.append(path)
    return paths


def test_geometry_files_print_one_document_with_pairs_per_class(tmp_path: Path) -> None:
    paths = _write_annotators(tmp_path, [0.02, 0.2])
    code, out = run("agreement", *map(str, paths), "--json", "--bootstrap", "200")
    assert code == 0
    document = json.loads(out)
    assert document["annotators"] == ["reference.json", "annotator1.json", "annotator2.json"]
    assert document["images"] == 30
    assert document["iou_threshold"] == "per-class"
    assert set(document["overall"]) == {"matched_rate", "mean_iou", "f1", "krippendorff_alpha"}
    assert set(document["ci"]) == {"matched_rate", "mean_iou", "krippendorff_alpha"}
    for name, (low, high) in document["ci"].items():
        assert low <= document["overall"][name] <= high
    row = next(r for r in document["per_class"] if r["matched_rate"] is not None)
    assert [(p["a"], p["b"]) for p in row["pairs"]] == [
        ("reference.json", "annotator1.json"),
        ("reference.json", "annotator2.json"),
        ("annotator1.json", "annotator2.json"),
    ]
    # the low-jitter annotator agrees more with the reference than the high-jitter one
    first, second = (
        np.nanmean([r["pairs"][k]["mean_iou"] or np.nan for r in document["per_class"]])
        for k in (0, 1)
    )
    assert first > second


def test_geometry_identical_files_agree_perfectly_at_one_threshold(tmp_path: Path) -> None:
    paths = _write_annotators(tmp_path, [0.02])
    code, out = run("agreement", str(paths[0]), str(paths[0]), "--iou-threshold", "0.5", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["iou_threshold"] == 0.5
    assert document["overall"] == {
        "matched_rate": 1.0,
        "mean_iou": 1.0,
        "f1": 1.0,
        "krippendorff_alpha": 1.0,
    }


def test_geometry_file_with_foreign_class_ids_exits_2_naming_it(tmp_path: Path) -> None:
    from labelgate.core.dataset import Dataset
    from labelgate.core.taxonomy import Taxonomy
    from labelgate.formats.coco import write_coco
    from labelgate.formats.registry import read

    paths = _write_annotators(tmp_path, [0.02])
    dataset = read(paths[1])
    shifted = Taxonomy.from_names(dataset.taxonomy.names, first_id=100)
    annotations = dataset.annotations
    moved = type(annotations).create(
        image_id=annotations.image_id,
        class_id=annotations.class_id - dataset.taxonomy.ids[0] + 100,
        bbox=annotations.bbox,
    )
    odd = tmp_path / "odd.json"
    write_coco(Dataset(moved, dataset.images, shifted), odd)
    code, out = run("agreement", str(paths[0]), str(odd), "--json")
    assert code == 2
    assert json.loads(out)["file"].endswith("odd.json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "neither", id="neither labels nor files"),
        pytest.param(["--labels", "x.csv", "a.json", "b.json"], "both", id="both"),
        pytest.param(["a.json"], "two or more", id="one file"),
    ],
)
def test_agreement_needs_labels_or_two_files(args: list[str], message: str) -> None:
    code, out = run("agreement", *args, "--json")
    assert code == 2
    assert message in json.loads(out)["error"]


def test_geometric_agreement_compares_polygons_as_drawn(tmp_path: Path):
    """Two triangles filling opposite halves of the same box agree perfectly by box and
    not at all as drawn: the CLI must use the polygons."""
    from labelgate.core.annotations import Annotations, Kind
    from labelgate.core.dataset import Dataset
    from labelgate.core.images import Images
    from labelgate.core.ragged import Ragged
    from labelgate.core.taxonomy import Taxonomy
    from labelgate.formats.coco import write_coco

    images = Images.create(id=[1], file_name=["a.jpg"], width=[50], height=[50])
    taxonomy = Taxonomy.from_names(["tent"])

    def triangle(points: list[list[float]]) -> Dataset:
        labels = Annotations.create(
            image_id=[1],
            class_id=[1],
            kind=[Kind.POLYGON],
            bbox=[[0, 0, 10, 10]],
            rings=Ragged(np.array(points, dtype=np.float64), np.array([0, 3])),
            ring_offsets=[0, 1],
        )
        return Dataset(labels, images, taxonomy)

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_coco(triangle([[0, 0], [10, 0], [0, 10]]), a)
    write_coco(triangle([[10, 10], [10, 0], [0, 10]]), b)
    code, out = run("agreement", str(a), str(b), "--iou-threshold", "0.5", "--json")
    assert code == 0, out
    tent = json.loads(out)["per_class"][0]
    # the triangles share only the diagonal: exact polygon IoU 0, below any threshold
    assert tent["mean_iou"] is None or tent["mean_iou"] < 0.01
    assert tent["matched_rate"] == 0.0
