"""A small program behind the API, for the API tests (imported as a helper module).

Two projects in one database: ``street-scenes`` with a batch in production (blind double
tasks and honeypots for ana and bo), and ``other-project`` where only dee has a task.
Everyone has the password ``PASSWORD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from labelgate.api import ApiSettings, create_app
from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.store.db import Database
from labelgate.workflow.auth import configure_hashing, set_password
from labelgate.workflow.program import Program, TaskView

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
MANAGER = "maria"
PEOPLE = {
    "maria": ["manager"],
    "rita": ["reviewer"],
    "adam": ["adjudicator"],
    "audrey": ["auditor"],
}


def spec_text(name: str = "street-scenes", **assignment: object) -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    values = {
        "double_annotation_rate": 0.5,
        "gold_rate": 0.0,
        "honeypot_rate": 0.5,
        "rework_to": '"original"',
        "qualify_per": '["class"]',
    } | assignment
    block = "[assignment]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text.replace('name = "street-scenes"', f'name = "{name}"', 1)


def renamed(data: Dataset, prefix: str, first_id: int) -> Dataset:
    ids = np.arange(first_id, first_id + len(data.images))
    position = data.images.index_of(data.annotations.image_id)
    images = data.images.replace(
        id=ids, file_name=np.array([f"{prefix}/{i}.jpg" for i in ids], dtype=object)
    )
    return Dataset(data.annotations.replace(image_id=ids[position]), images, data.taxonomy)


def truth_for(data: Dataset, image_id: int) -> Annotations:
    return data.annotations[data.annotations.image_id == image_id].replace(attributes={})


@dataclass
class World:
    db: Database
    program: Program
    other: Program
    batch: int
    work: Dataset
    honeypots: Dataset
    client: TestClient

    def tasks(self, user: str) -> list[TaskView]:
        return self.program.my_tasks(user)

    def truth(self, image_id: int) -> Annotations:
        data = self.honeypots if image_id >= 20_000 else self.work
        return truth_for(data, image_id)

    def shared_images(self) -> list[int]:
        """Work images labelled blind by both (a honeypot both happen to get is no pair)."""
        ana = {t.image_id for t in self.tasks("ana") if t.image_id < 20_000}
        return sorted(ana & {t.image_id for t in self.tasks("bo")})

    def login(self, name: str) -> dict[str, str]:
        """Bearer headers of a fresh login (no cookies kept on the client)."""
        response = self.client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {response.json()['token']}"}


def build_world(db: Database, tmp_path: Path, images: int = 8) -> World:
    program = Program.create(db, spec_text())
    for name, roles in PEOPLE.items():
        program.add_user(name, roles, actor="labelgate")
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    # neutral file names: the honeypots must not be told apart by anything the API shows
    honeypots = renamed(generate_dataset(4, seed=4), "img", 20_000)
    program.import_gold(gold, actor=MANAGER)
    program.import_gold(honeypots, purpose="honeypot", actor=MANAGER)
    for user in ("ana", "bo"):
        assert program.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER).passed
    work = renamed(generate_dataset(images, seed=3), "w", 1)
    program.import_images(work.images, actor=MANAGER)
    batch = program.create_batch("b1", actor=MANAGER)
    for _ in range(2):
        program.advance(batch, actor=MANAGER)
    program.assign(batch, actor=MANAGER, seed=1)

    # another taxonomy (a tighter car tier): ana and bo are not qualified there, only dee
    other_spec = spec_text("other-project", double_annotation_rate=0.0).replace(
        'tier = "standard"\niou_threshold = 0.7', 'tier = "standard"\niou_threshold = 0.75', 1
    )
    other = Program.create(db, other_spec)
    other_gold = renamed(generate_dataset(12, seed=5), "gold", 500)
    other.import_gold(other_gold, actor=MANAGER)
    other.qualify("dee", other_gold.annotations.replace(attributes={}), actor=MANAGER)
    other.import_images(renamed(generate_dataset(2, seed=6), "o", 1).images, actor=MANAGER)
    other_batch = other.create_batch("ob", actor=MANAGER)
    for _ in range(2):
        other.advance(other_batch, actor=MANAGER)
    other.assign(other_batch, actor=MANAGER)

    # the lowest argon2 cost: the suite logs in hundreds of times (production keeps the default)
    configure_hashing(time_cost=1, memory_cost_kib=8, parallelism=1)
    for name in [*PEOPLE, "ana", "bo", "chen", "dee"]:
        set_password(db, name, PASSWORD, actor="labelgate")
    settings = ApiSettings(data_dir=tmp_path / "data", max_upload_bytes=200_000)
    client = TestClient(create_app(db, settings=settings))
    return World(db, program, other, batch, work, honeypots, client)
