"""A task's save writes the task's image in place of the container's image ids."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from labelgate.core.annotations import Annotations
from labelgate.core.images import Images
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import AnnotationRow, ProjectRow
from labelgate.store.repository import add_images, add_tasks, add_users, save_revision


def test_save_writes_the_given_image_for_every_object(db: Database) -> None:
    with db.session() as s:
        project = ProjectRow(name="p")
        s.add(project)
        s.flush()
        images = Images.create(id=[7, 8], file_name=["a.jpg", "b.jpg"], width=[9, 9], height=[9, 9])
        _, image = add_images(s, project.id, images).tolist()
        (alice,) = add_users(s, ["alice"]).tolist()
        (task,) = add_tasks(
            s,
            project_id=project.id,
            image_id=np.array([image]),
            assignee_id=np.array([alice]),
            purpose="production",
        ).tolist()
    # the container says image 0 (what the API builds); the store must write the task's
    labels = Annotations.create(
        id=[3, 5], image_id=[0, 0], class_id=[1, 2], bbox=[[0, 0, 2, 2], [1, 1, 4, 5]]
    )
    with db.session() as s:
        saved = save_revision(
            s, task_id=task, base_revision_id=None, author_id=alice, labels=labels, image_id=image
        )
    with db.session() as s:
        stored = s.execute(
            select(AnnotationRow.image_id, AnnotationRow.object_key).order_by(
                AnnotationRow.object_key
            )
        ).all()
        back = load_annotations(s, [saved.revision_id])
    assert [tuple(r) for r in stored] == [(image, 3), (image, 5)]
    assert back.image_id.tolist() == [image, image]
    assert back.annotator_id.tolist() == [alice, alice]  # the revision's author
    assert back.bbox.tolist() == [[0, 0, 2, 2], [1, 1, 4, 5]]
    assert back.area.tolist() == [4.0, 12.0]  # 2 x 2 and 3 x 4, by hand
