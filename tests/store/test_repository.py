"""Bulk writes and reads of annotations, revisions and optimistic locking, on both databases."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.errors import ConflictError, StoreError
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import ProjectRow, RevisionRow, TaskRow
from labelgate.store.repository import (
    add_images,
    add_tasks,
    add_users,
    image_table,
    import_revisions,
    save_revision,
)


def _project(db: Database) -> int:
    with db.session() as s:
        project = ProjectRow(name="p")
        s.add(project)
        s.flush()
        return project.id


def _mixed(image_ids: list[int]) -> Annotations:
    """Every geometry kind, attributes present on some rows, NaN scores and a tag."""
    rings = Ragged(
        np.array(
            [[0, 0], [4, 0], [4, 4], [10, 10], [12, 10], [12, 13], [1, 1], [2, 1], [2, 2]],
            dtype=np.float64,
        ),
        np.array([0, 3, 6, 9]),
    )
    n = 5
    ring_offsets = np.array([0, 0, 2, 2, 3, 3])  # row 1: two rings; row 3: one ring
    rle = Ragged(np.array([3, 2, 4], dtype=np.int64), np.array([0, 0, 0, 0, 0, 3]))
    rle_size = np.zeros((n, 2), dtype=np.int64)
    rle_size[4] = (3, 3)
    keypoints = Ragged(
        np.array([[1, 2, 2], [3, 4, 1]], dtype=np.float64), np.array([0, 2, 2, 2, 2, 2])
    )
    return Annotations.create(
        id=[11, 12, 13, 14, 15],
        image_id=image_ids,
        class_id=[1, 2, 1, 3, 2],
        kind=[Kind.KEYPOINTS, Kind.POLYGON, Kind.TAG, Kind.POLYGON, Kind.MASK],
        bbox=[
            [1, 2, 3, 4],
            [0, 0, 12, 13],
            [np.nan] * 4,
            [1, 1, 2, 2],
            [0, 0, 3, 1],
        ],
        score=[0.9, np.nan, np.nan, 0.25, 1.0],
        source=[Source.HUMAN, Source.PRELABEL, Source.HUMAN, Source.MERGED, Source.HUMAN],
        track_id=[-1, 7, -1, 3, -1],
        occluded=[True, False, False, True, False],
        truncated=[False, True, False, False, False],
        iscrowd=[False, False, False, False, True],
        rings=rings,
        ring_offsets=ring_offsets,
        rle_counts=rle,
        rle_size=rle_size,
        keypoints=keypoints,
        attributes={
            "colour": AttributeColumn.from_list(["red", None, "blue", None, None]),
            "wheels": AttributeColumn.from_list([None, 4, None, None, 2]),
        },
    )


def _assert_same(got: Annotations, want: Annotations) -> None:
    for name in (
        "id",
        "image_id",
        "class_id",
        "kind",
        "source",
        "track_id",
        "z_order",
        "occluded",
        "truncated",
        "iscrowd",
        "difficult",
        "ring_offsets",
        "rle_size",
    ):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for name in ("bbox", "score", "area"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for name in ("rings", "rle_counts", "keypoints"):
        g, w = getattr(got, name), getattr(want, name)
        np.testing.assert_array_equal(g.values, w.values, err_msg=name)
        np.testing.assert_array_equal(g.offsets, w.offsets, err_msg=name)
    assert sorted(got.attributes) == sorted(want.attributes)
    for name, column in want.attributes.items():
        assert got.attributes[name].to_list() == column.to_list(), name


def test_every_geometry_kind_and_attribute_round_trips(db: Database) -> None:
    project_id = _project(db)
    images = Images.create(
        id=[100, 200], file_name=["a.jpg", "b.jpg"], width=[20, 30], height=[20, 30]
    )
    with db.session() as s:
        store_ids = add_images(s, project_id, images)
        (user,) = add_users(s, ["ann"]).tolist()
        tasks = add_tasks(
            s,
            project_id=project_id,
            image_id=store_ids,
            assignee_id=[user, user],
            purpose="production",
        )
        image_of = [store_ids[0], store_ids[1], store_ids[0], store_ids[1], store_ids[1]]
        labels = _mixed([int(i) for i in image_of])
        label_task = np.array([0, 1, 0, 1, 1])
        revisions = import_revisions(s, tasks, np.array([user, user]), labels, label_task)
    with db.session() as s:
        got = load_annotations(s, revisions.tolist())
        heads = load_annotations(s, select(TaskRow.head_revision_id))
    # rows come back grouped by revision: task 0's objects, then task 1's
    order = np.argsort(label_task, kind="stable")
    want = labels.take(order)
    _assert_same(got, want)
    _assert_same(heads, want)
    assert (got.annotator_id == user).all()


def test_image_table_keeps_external_ids_and_refuses_duplicates(db: Database) -> None:
    project_id = _project(db)
    images = Images.create(
        id=[5, 9],
        file_name=["x.jpg", "y.jpg"],
        width=[1, 2],
        height=[3, 4],
        scene_type=["urban", ""],
        tags=[("night",), ()],
    )
    with db.session() as s:
        store_ids = add_images(s, project_id, images)
    with db.session() as s:
        ids, back = image_table(s, project_id)
    np.testing.assert_array_equal(ids, store_ids)
    assert back.id.tolist() == [5, 9]
    assert back.scene_type.tolist() == ["urban", ""]
    assert back.tags.tolist() == [("night",), ()]
    with pytest.raises(StoreError, match=r"'x\.jpg' is already in project"), db.session() as s:
        add_images(s, project_id, images)


def _one_task(db: Database) -> tuple[int, int, int]:
    project_id = _project(db)
    images = Images.create(id=[1], file_name=["a.jpg"], width=[10], height=[10])
    with db.session() as s:
        (image,) = add_images(s, project_id, images).tolist()
        alice, bob = add_users(s, ["alice", "bob"]).tolist()
        (task,) = add_tasks(
            s,
            project_id=project_id,
            image_id=np.array([image]),
            assignee_id=np.array([alice]),
            purpose="production",
        ).tolist()
    return task, alice, bob


def _box(image_store_id: int, x: float) -> Annotations:
    return Annotations.create(image_id=[image_store_id], class_id=[1], bbox=[[x, 0, x + 2, 2]])


def test_stale_save_raises_conflict_and_writes_nothing(db: Database) -> None:
    task, alice, bob = _one_task(db)
    with db.session() as s:
        image = s.get(TaskRow, task).image_id  # type: ignore[union-attr]
        first = save_revision(
            s, task_id=task, base_revision_id=None, author_id=alice, labels=_box(image, 0)
        )
    with db.session() as s:
        second = save_revision(
            s,
            task_id=task,
            base_revision_id=first.revision_id,
            author_id=alice,
            labels=_box(image, 1),
        )
    assert (first.number, second.number) == (1, 2)
    # bob edited revision 1 too, but alice's revision 2 landed first
    with (
        pytest.raises(ConflictError, match=r"edited revision 1, .*#2 by alice") as caught,
        db.session() as s,
    ):
        save_revision(
            s,
            task_id=task,
            base_revision_id=first.revision_id,
            author_id=bob,
            labels=_box(image, 5),
        )
    assert caught.value.current_revision_id == second.revision_id
    with db.session() as s:
        assert s.execute(select(RevisionRow.id)).scalars().all() == [
            first.revision_id,
            second.revision_id,
        ]
        head = load_annotations(s, [second.revision_id])
    assert head.bbox.tolist() == [[1, 0, 3, 2]]


def test_retried_save_with_same_request_id_lands_once(db: Database) -> None:
    task, alice, _ = _one_task(db)
    with db.session() as s:
        image = s.get(TaskRow, task).image_id  # type: ignore[union-attr]
    saves = []
    for _ in range(2):
        with db.session() as s:
            saves.append(
                save_revision(
                    s,
                    task_id=task,
                    base_revision_id=None,
                    author_id=alice,
                    labels=_box(image, 0),
                    request_id="req-1",
                )
            )
    assert saves[0].revision_id == saves[1].revision_id
    assert (saves[0].replayed, saves[1].replayed) == (False, True)
    with db.session() as s:
        assert len(s.execute(select(RevisionRow.id)).all()) == 1


def test_generated_data_set_round_trips_in_bulk(db: Database) -> None:
    data = generate_dataset(200, seed=3)
    project_id = _project(db)
    with db.session() as s:
        store_ids = add_images(s, project_id, data.images)
        (user,) = add_users(s, ["ref"]).tolist()
        tasks = add_tasks(
            s,
            project_id=project_id,
            image_id=store_ids,
            assignee_id=np.full(len(store_ids), user),
            purpose="gold",
        )
        position = data.images.index_of(data.annotations.image_id)
        labels = data.annotations.replace(image_id=store_ids[position])
        import_revisions(s, tasks, np.full(len(tasks), user), labels, position)
    with db.session() as s:
        back = load_annotations(s, select(TaskRow.head_revision_id))
    order = np.argsort(position, kind="stable")
    want = labels.take(order)
    np.testing.assert_array_equal(back.bbox, want.bbox)
    np.testing.assert_array_equal(back.class_id, want.class_id)
    np.testing.assert_array_equal(back.occluded, want.occluded)
    assert len(back) == len(data.annotations) > 1000
