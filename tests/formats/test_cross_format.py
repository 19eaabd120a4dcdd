"""Any generated data set survives COCO -> X -> COCO with identical classes and boxes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelgate.core import Annotations, Dataset, Images, Taxonomy
from labelgate.core.generate import generate_dataset
from labelgate.formats import read, write
from labelgate.formats.coco import read_coco, write_coco
from labelgate.formats.roundtrip import compare_boxes, roundtrip
from labelgate.formats.yolo import read_yolo

TARGETS = {"voc": "voc", "yolo": "yolo", "cvat": "a.xml", "labelstudio": "a.json"}
# the largest coordinate error each format's text allows on images up to 4000 px
PRECISION_PX = {"voc": 1e-9, "yolo": 1e-5, "cvat": 1e-9, "labelstudio": 1e-7}


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    n_images = draw(st.integers(1, 6))
    widths = draw(st.lists(st.integers(8, 4000), min_size=n_images, max_size=n_images))
    heights = draw(st.lists(st.integers(8, 4000), min_size=n_images, max_size=n_images))
    names = draw(
        st.lists(
            st.text("abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=8),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    n = draw(st.integers(0, 40))
    image_row = np.array(
        draw(st.lists(st.integers(0, n_images - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    fractions = np.array(
        draw(st.lists(st.tuples(*[st.floats(0, 1)] * 4), min_size=n, max_size=n)), dtype=float
    ).reshape(n, 4)
    w = np.array(widths, dtype=float)[image_row]
    h = np.array(heights, dtype=float)[image_row]
    x = np.sort(fractions[:, [0, 2]], axis=1) * w[:, None]
    y = np.sort(fractions[:, [1, 3]], axis=1) * h[:, None]
    bbox = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    class_id = np.array(
        draw(st.lists(st.integers(1, len(names)), min_size=n, max_size=n)), dtype=np.int64
    )
    image_ids = np.arange(1, n_images + 1) * 7
    return Dataset(
        Annotations.create(image_id=image_ids[image_row], class_id=class_id, bbox=bbox),
        Images.create(
            id=image_ids,
            file_name=[f"img_{i:03d}.jpg" for i in range(n_images)],
            width=widths,
            height=heights,
        ),
        Taxonomy.from_names(names),
    )


def read_back(dataset: Dataset, format_name: str, target: Path) -> Dataset:
    write(dataset, target, format_name)
    if format_name == "yolo":
        sizes = {
            str(f): (int(w), int(h))
            for f, w, h in zip(
                dataset.images.file_name, dataset.images.width, dataset.images.height
            )
        }
        return read_yolo(target, image_sizes=sizes)
    return read(target, format_name)


@pytest.mark.parametrize("format_name", list(TARGETS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset=datasets())
def test_coco_to_x_to_coco_keeps_classes_and_boxes(dataset: Dataset, format_name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_coco(dataset, folder / "in.json")
        coco = read_coco(folder / "in.json")
        converted = read_back(coco, format_name, folder / TARGETS[format_name])
        write_coco(converted, folder / "out.json")
        again = read_coco(folder / "out.json")
    agreement = compare_boxes(coco, again)
    assert agreement.identical, agreement
    assert agreement.max_error_px <= PRECISION_PX[format_name]
    if format_name == "labelstudio":
        # a Label Studio export carries no label config: only classes in use come back
        used = set(coco.taxonomy.names_of(np.unique(coco.annotations.class_id)))
        assert set(again.taxonomy.names) == used
    else:
        assert sorted(again.taxonomy.names) == sorted(coco.taxonomy.names)


@pytest.mark.parametrize("format_name", list(TARGETS))
def test_generated_scenes_round_trip_through_every_format(format_name: str, tmp_path: Path) -> None:
    dataset = generate_dataset(60, seed=11)
    trip = roundtrip(dataset, format_name, tmp_path / TARGETS[format_name])
    assert trip.agreement is not None
    assert trip.agreement.identical
    assert trip.agreement.left == len(dataset.annotations)
    assert trip.agreement.max_error_px <= PRECISION_PX[format_name]


def test_compare_boxes_sees_a_lost_box_and_a_moved_one() -> None:
    dataset = generate_dataset(5, seed=3)
    ann = dataset.annotations
    fewer = dataset.replace(annotations=ann[1:])
    agreement = compare_boxes(dataset, fewer)
    assert not agreement.identical and agreement.mismatched_groups == 1
    moved = ann.bbox.copy()
    moved[3] += 0.25
    shifted = dataset.replace(annotations=ann.replace(bbox=moved))
    assert compare_boxes(dataset, shifted).max_error_px == pytest.approx(0.25)
