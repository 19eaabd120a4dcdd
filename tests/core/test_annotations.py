from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelgate.core import (
    Annotations,
    AttributeColumn,
    Dataset,
    Images,
    Kind,
    Ragged,
    Taxonomy,
)
from labelgate.core.annotations import polygon_area, rle_area
from labelgate.errors import ValidationError


def three_boxes(**extra: object) -> Annotations:
    return Annotations.create(
        image_id=[1, 1, 2],
        class_id=[1, 2, 1],
        bbox=[[0, 0, 2, 2], [1, 1, 3, 4], [5, 5, 6, 6]],
        **extra,  # type: ignore[arg-type]
    )


def test_defaults_fill_every_optional_field() -> None:
    ann = three_boxes()
    assert ann.id.tolist() == [1, 2, 3]
    assert ann.kind.tolist() == [Kind.BOX] * 3
    assert np.isnan(ann.score).all()
    assert ann.annotator_id.tolist() == [-1, -1, -1]
    assert ann.track_id.tolist() == [-1, -1, -1]
    assert ann.area.tolist() == [4.0, 6.0, 1.0]
    assert len(ann.rings) == 0 and ann.ring_offsets.tolist() == [0, 0, 0, 0]
    assert ann.rle_counts.lengths.tolist() == [0, 0, 0]


def test_arrays_are_read_only() -> None:
    ann = three_boxes()
    with pytest.raises(ValueError, match="read-only"):
        ann.bbox[0, 0] = 5
    with pytest.raises(ValueError, match="read-only"):
        ann.class_id[0] = 3
    # every array the container holds, the ragged ones' too, whether built or taken
    for built in (ann, ann.take(np.array([2, 0]))):
        arrays = [getattr(built, f.name) for f in dataclasses.fields(built)]
        arrays += [a for r in arrays if isinstance(r, Ragged) for a in (r.values, r.offsets)]
        assert all(not a.flags.writeable for a in arrays if isinstance(a, np.ndarray)), [
            a for a in arrays if isinstance(a, np.ndarray) and a.flags.writeable
        ]


def test_iteration_is_refused_so_library_code_works_on_columns() -> None:
    with pytest.raises(TypeError, match="columnar"):
        list(three_boxes())


@pytest.mark.parametrize(
    ("changes", "field", "row", "message"),
    [
        pytest.param(
            {"bbox": [[0, 0, 2, 2], [3, 1, 1, 4], [5, 5, 6, 6]]},
            "bbox",
            1,
            "x2 >= x1",
            id="x2-before-x1",
        ),
        pytest.param(
            {"bbox": [[0, 0, 2, 2], [1, 1, 3, 4], [5, 7, 6, 6]]},
            "bbox",
            2,
            "y2 >= y1",
            id="y2-before-y1",
        ),
        pytest.param(
            {"bbox": [[0, 0, np.inf, 2], [1, 1, 3, 4], [5, 5, 6, 6]]},
            "bbox",
            0,
            "finite",
            id="infinite",
        ),
        pytest.param({"id": [4, 5, 4]}, "id", 2, "duplicate annotation id 4", id="duplicate-id"),
        pytest.param({"area": [1.0, -2.0, 1.0]}, "area", 1, "area >= 0", id="negative-area"),
        pytest.param({"kind": [1, 9, 1]}, "kind", 1, "expected one of", id="unknown-kind"),
        pytest.param(
            {"kind": [1, Kind.POLYGON, 1]}, "rings", 1, "polygon needs", id="polygon-no-ring"
        ),
    ],
)
def test_constructor_names_field_and_row(changes: dict, field: str, row: int, message: str) -> None:
    base = {
        "image_id": [1, 1, 2],
        "class_id": [1, 2, 1],
        "bbox": [[0, 0, 2, 2], [1, 1, 3, 4], [5, 5, 6, 6]],
    }
    base.update(changes)
    with pytest.raises(ValidationError, match=message) as info:
        Annotations.create(**base)
    assert (info.value.field, info.value.row) == (field, row)


def test_shape_mismatch_is_reported_without_a_row() -> None:
    with pytest.raises(ValidationError, match=r"expected shape \(3,\), got \(1,\)") as info:
        Annotations.create(
            image_id=[1, 1, 2], class_id=[1, 2, 1], bbox=np.zeros((3, 4)), score=[1.0]
        )
    assert info.value.field == "score"


def test_float_class_ids_that_are_not_integers_are_refused() -> None:
    with pytest.raises(ValidationError, match="expected integers"):
        Annotations.create(image_id=[1], class_id=[1.5], bbox=[[0, 0, 1, 1]])


def test_problems_lists_every_bad_row_when_unchecked() -> None:
    ann = Annotations.create(
        image_id=[1, 1, 1],
        class_id=[1, 1, 1],
        bbox=[[3, 0, 1, 1], [0, 0, 1, 1], [5, 0, 1, 1]],
        check=False,
    )
    problems = ann.problems()
    assert [(p.field, p.row) for p in problems] == [("bbox", 0), ("bbox", 2)]


def test_tags_have_no_box() -> None:
    ann = Annotations.create(image_id=[1, 1], class_id=[1, 2], bbox=[[np.nan] * 4, [0, 0, 1, 1]])
    assert ann.kind.tolist() == [Kind.TAG, Kind.BOX]
    assert ann.area.tolist() == [0.0, 1.0]
    with pytest.raises(ValidationError, match="a tag has no box"):
        Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 1, 1]], kind=[Kind.TAG])


def polygons() -> Annotations:
    # annotation 0: a 2x2 square and a 1x1 square (two rings); 1: a box; 2: a triangle
    points = np.array(
        [[0, 0], [2, 0], [2, 2], [0, 2], [5, 5], [6, 5], [6, 6], [5, 6], [0, 0], [4, 0], [0, 3]],
        dtype=float,
    )
    rings = Ragged(points, np.array([0, 4, 8, 11]))
    return Annotations.create(
        image_id=[1, 2, 3],
        class_id=[1, 1, 2],
        bbox=[[0, 0, 6, 6], [0, 0, 1, 1], [0, 0, 4, 3]],
        kind=[Kind.POLYGON, Kind.BOX, Kind.POLYGON],
        rings=rings,
        ring_offsets=[0, 2, 2, 3],
    )


def test_polygon_area_is_the_shoelace_sum_over_rings() -> None:
    ann = polygons()
    assert ann.area.tolist() == [5.0, 1.0, 6.0]  # 4 + 1; the box; 4 * 3 / 2


def test_selection_carries_ragged_geometry_along() -> None:
    ann = polygons()
    picked = ann[np.array([2, 0])]
    assert picked.ring_offsets.tolist() == [0, 1, 3]
    assert picked.rings.row(0).tolist() == [[0, 0], [4, 0], [0, 3]]
    assert picked.rings.row(2).tolist() == [[5, 5], [6, 5], [6, 6], [5, 6]]
    assert picked.area.tolist() == [6.0, 5.0]
    assert ann[ann.kind == Kind.BOX].ring_offsets.tolist() == [0, 0]


def test_concat_roundtrips_a_split() -> None:
    ann = polygons().with_attribute("colour", AttributeColumn.from_list(["red", None, "blue"]))
    first, rest = ann[:1], ann[1:]
    joined = Annotations.concat([first, rest])
    assert joined.rings.equals(ann.rings)
    assert joined.ring_offsets.tolist() == ann.ring_offsets.tolist()
    assert joined.attributes["colour"].to_list() == ["red", None, "blue"]


def test_concat_fills_missing_attribute_columns_as_absent() -> None:
    a = three_boxes(id=[1, 2, 3]).with_attribute("n", AttributeColumn.from_list([1, 2, 3]))
    b = three_boxes(id=[4, 5, 6])
    joined = Annotations.concat([a, b])
    assert joined.attributes["n"].to_list() == [1, 2, 3, None, None, None]


def test_group_by_image_and_class_sorts_once() -> None:
    ann = Annotations.create(
        image_id=[3, 1, 3, 1, 3], class_id=[2, 1, 1, 1, 2], bbox=np.tile([0.0, 0, 1, 1], (5, 1))
    )
    groups = ann.group_by_image_class()
    assert groups.keys.tolist() == [[1, 1], [3, 1], [3, 2]]
    assert groups.sizes.tolist() == [2, 1, 2]
    assert groups.group_of().tolist() == [2, 0, 1, 0, 2]
    assert groups.reduce_sum(np.arange(5.0)).tolist() == [1 + 3, 2, 0 + 4]


def test_rle_area_counts_foreground_runs() -> None:
    counts = Ragged(np.array([0, 20, 30, 3, 4, 5]), np.array([0, 3, 6]))
    assert rle_area(counts).tolist() == [20.0, 4.0]


@given(
    st.lists(
        st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.floats(0, 1e3), st.floats(0, 1e3)),
        min_size=0,
        max_size=30,
    ),
    st.data(),
)
def test_take_of_a_permutation_keeps_every_row(rows: list, data: st.DataObject) -> None:
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=float).reshape(-1, 4)
    n = len(boxes)
    ann = Annotations.create(image_id=np.arange(n) % 3, class_id=np.arange(n) % 2, bbox=boxes)
    perm = np.array(data.draw(st.permutations(list(range(n)))), dtype=np.int64)
    taken = ann.take(perm)
    assert np.array_equal(taken.bbox, boxes[perm])
    assert np.array_equal(taken.id, ann.id[perm])


def test_polygon_area_matches_shapely() -> None:
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(7)
    rings = []
    for _ in range(50):
        k = int(rng.integers(3, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(1, 10, k)
        rings.append(np.stack([np.cos(angles) * radius, np.sin(angles) * radius], axis=1))
    ragged = Ragged.from_rows(rings)
    ours = polygon_area(ragged, np.arange(51))
    reference = [shapely.Polygon(r).area for r in rings]
    np.testing.assert_allclose(ours, reference, rtol=1e-12)


def test_dataset_rejects_unknown_images_and_boxes_outside() -> None:
    images = Images.create(id=[1], width=[10], height=[10])
    taxonomy = Taxonomy.from_names(["car"])
    with pytest.raises(ValidationError, match="unknown image id 2"):
        Dataset(
            Annotations.create(image_id=[2], class_id=[1], bbox=[[0, 0, 1, 1]]), images, taxonomy
        )
    with pytest.raises(ValidationError, match="outside its 10x10 image") as info:
        Dataset(
            Annotations.create(
                image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 1, 1], [5, 5, 12, 9]]
            ),
            images,
            taxonomy,
        )
    assert (info.value.field, info.value.row) == ("bbox", 1)
    # within the rounding tolerance of one pixel: accepted
    Dataset(
        Annotations.create(image_id=[1], class_id=[1], bbox=[[-0.5, 0, 10.5, 10]]), images, taxonomy
    )


def test_dense_keypoints_match_the_coco_flat_lists(shared_data: Path) -> None:
    import json

    from labelgate.formats import read

    path = shared_data / "faster-coco-eval/keypoints_dataset/gt_dataset.json"
    dense = read(path).annotations.keypoints_dense(17)
    records = json.loads(path.read_text())["annotations"]
    expected = np.array([r["keypoints"] for r in records], dtype=float).reshape(-1, 17, 3)
    assert np.array_equal(dense, expected)
    with pytest.raises(ValidationError, match="at most 3 keypoints"):
        read(path).annotations.keypoints_dense(3)
