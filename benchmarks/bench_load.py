"""Bounded load test of the API on loopback: concurrent annotators saving, start-up, export.

Run:  python benchmarks/bench_load.py [--seconds 30] [--levels 1,10,50]
      [--db postgresql+psycopg://postgres@127.0.0.1:5432/test] [--workers N]
      [--export-tasks 5000] [--skip-export] [--tabs 1] [--py-spy FILE]

A fresh database (a temporary SQLite file, or a fresh schema of the PostgreSQL database
given with ``--db``) gets a project through :class:`~labelgate.workflow.program.Program`:
one annotator per simulated client, each qualified on gold and holding tasks of a batch in
production, and a login token each (:func:`labelgate.workflow.auth.login`). Then
``labelgate serve`` starts in a subprocess (``--workers N`` runs N uvicorn worker
processes) and the benchmark measures:

- **start-up**: seconds from launching ``labelgate serve`` until ``/api/health`` answers;
- **saves**: for each level (1, 10, 50 clients) every client saves one annotation of 10
  boxes on its own task over and over for ``--seconds``, like the editor: each save carries
  the revision it edited and a fresh ``Idempotency-Key``; a 409 reloads the task and saves
  again on the new head; a dropped connection or timeout re-sends the same request (same
  key). Every tenth save is deliberately sent twice with the same key, and the second answer
  must be ``replayed`` with the same revision. Throughput counts acknowledged saves (first
  answers) per second; latency is per save request as the client sees it. With
  ``--tabs 2`` two clients (two tabs of one annotator) save the same task, so most saves
  are stale: each 409 reloads the task (``GET``) and saves on the new head;
- **integrity**: afterwards the database's revisions and annotation rows of those tasks are
  compared with the acknowledged saves: none lost, none written twice or unacknowledged,
  revision numbers without gaps, 10 rows per revision, and a stale save answered 409 with
  nothing written;
- **export**: a second project whose batch holds ``--export-tasks`` delivered tasks of about
  10 boxes each (at most 13) is exported to COCO through the API's export job
  (``POST .../export``, poll ``/api/jobs/{id}``, download); the file is read back and
  checked. Its labels are written with the store's bulk import and the batch is marked
  delivered directly in the store: running thousands of simulated reviews through the
  gates takes minutes and is not what is measured;
- **memory**: the server's resident set size (all its processes) idle after start-up, and
  the peak sampled every 0.2 s during each level and the export; its CPU seconds per level.

The clients run in this process on one asyncio loop, each on a keep-alive connection of
its own (:class:`Connection`, a lean HTTP/1.1 client: httpx spent more CPU per request than
the server spends on a save); the table gives their CPU time too, since on a small machine
they compete with the server for the cores. Any lost or
duplicated save, or a replay that differs from its first answer, fails the benchmark
(exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import bindparam, func, select, update

from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.store.db import Database, upgrade
from labelgate.store.models import AnnotationRow, BatchItemRow, BatchRow, RevisionRow, TaskRow
from labelgate.store.repository import import_revisions
from labelgate.workflow.auth import configure_hashing, login, set_password
from labelgate.workflow.program import Program

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "load-test password"
MANAGER = "maria"
BOXES = 10
TASKS_PER_ANNOTATOR = 2
# at most 13 boxes per exported task: ~10 on average, 51,908 for 5,000 tasks (the peer's
# export held 50,270)
EXPORT_BOXES = 13
REPLAY_EVERY = 10  # every tenth save is sent twice with the same Idempotency-Key
REQUEST_TIMEOUT_S = 30.0


# --- the program behind the server ---------------------------------------------------------


def spec_text(name: str) -> str:
    """examples/spec.toml under another name: single annotation, no gold or honeypot tasks."""
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 0.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'rework_to = "original"\nqualify_per = ["class"]\n\n'
    )
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text.replace('name = "street-scenes"', f'name = "{name}"', 1)


def renamed(data: Dataset, prefix: str, first_id: int) -> Dataset:
    """The same data under image ids ``first_id..`` and file names ``prefix/<id>.jpg``."""
    ids = np.arange(first_id, first_id + len(data.images))
    position = data.images.index_of(data.annotations.image_id)
    images = data.images.replace(
        id=ids, file_name=np.array([f"{prefix}/{i}.jpg" for i in ids], dtype=object)
    )
    return Dataset(data.annotations.replace(image_id=ids[position]), images, data.taxonomy)


def production_batch(
    db: Database, project: str, annotators: list[str], images: int, seed: int
) -> tuple[Program, int, Dataset]:
    """A project whose batch is in production, its tasks assigned round-robin."""
    program = Program.create(db, spec_text(project))
    program.add_user(MANAGER, ["manager"], actor="labelgate")
    gold = renamed(generate_dataset(12, seed=2), "gold", 1_000_000)
    program.import_gold(gold, actor=MANAGER)
    for name in annotators:
        program.add_user(name, ["annotator"], actor=MANAGER)
        result = program.qualify(name, gold.annotations.replace(attributes={}), actor=MANAGER)
        if not result.passed:
            raise SystemExit(f"set-up: {name} failed the pilot on perfect labels")
    work = renamed(generate_dataset(images, seed=seed), "w", 1)
    program.import_images(work.images, actor=MANAGER)
    batch = program.create_batch("b1", actor=MANAGER)
    for _ in range(2):
        program.advance(batch, actor=MANAGER)
    program.assign(batch, actor=MANAGER, seed=1)
    return program, batch, work


def tokens(db: Database, names: list[str]) -> dict[str, str]:
    """A bearer token per user (the login the API's route runs)."""
    out = {}
    for name in names:
        set_password(db, name, PASSWORD, actor="labelgate")
        logged = login(db, name, PASSWORD)
        if logged is None:
            raise SystemExit(f"set-up: {name} cannot log in")
        out[name] = logged[1]
    return out


def deliver_export_batch(db: Database, n_tasks: int) -> tuple[str, int, int]:
    """A second project with ``n_tasks`` delivered tasks, ~10 boxes each; (name, batch, boxes).

    The batch is assigned through the program; the labels go in with the store's bulk
    import (as ``Program.import_gold`` writes them) and the batch is marked delivered in the
    store, standing in for thousands of reviews.
    """
    name = "export-bench"
    people = [f"exp{i:02d}" for i in range(10)]
    _, batch, work = production_batch(db, name, people, n_tasks, seed=7)
    with db.session() as s:
        tasks = s.execute(
            select(TaskRow.id, TaskRow.image_id, TaskRow.assignee_id)
            .where(TaskRow.batch_id == batch)
            .order_by(TaskRow.image_id)
        ).all()
        task_ids = np.array([t.id for t in tasks], dtype=np.int64)
        store_image = np.array([t.image_id for t in tasks], dtype=np.int64)
        authors = np.array([t.assignee_id for t in tasks], dtype=np.int64)
        labels = work.annotations
        # at most EXPORT_BOXES per image: the objects' rank inside their image
        order = np.argsort(labels.image_id, kind="stable")
        labels = labels[order]
        starts = np.searchsorted(labels.image_id, labels.image_id, side="left")
        labels = labels[np.arange(len(labels)) - starts < EXPORT_BOXES].replace(attributes={})
        # external ids -> store ids: tasks are ordered by store id, images by external id
        external = np.sort(work.images.id)
        position = np.searchsorted(external, labels.image_id)
        labels = labels.replace(image_id=store_image[position])
        revisions = import_revisions(s, task_ids, authors, labels, position)
        s.execute(update(TaskRow).where(TaskRow.batch_id == batch).values(status="accepted"))
        items: Any = BatchItemRow.__table__
        s.connection().execute(
            update(items)
            .where(items.c.batch_id == batch, items.c.image_id == bindparam("image"))
            .values(state="accepted", final_revision_id=bindparam("revision")),
            [
                {"image": image, "revision": revision}
                for image, revision in zip(store_image.tolist(), revisions.tolist())
            ],
        )
        s.execute(
            update(BatchRow)
            .where(BatchRow.id == batch)
            .values(stage="delivered", state="delivered")
        )
    return name, batch, len(labels)


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(c) for c in text.split()]
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant (uvicorn's worker processes)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def rss_mb(pid: int) -> float:
    """Resident set size of the process tree, MB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process tree (live processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / tick


class Sampler:
    """Peak RSS of the server tree, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.2)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


@contextmanager
def server(
    url: str, port: int, data_dir: Path, workers: int, log: Path, profile: Path | None
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``labelgate serve`` in a subprocess; yields it and the seconds until /api/health.

    With ``profile``, the server runs under ``py-spy record`` (collapsed stacks to that
    file); its memory and CPU figures then include py-spy's.
    """
    command = [
        sys.executable, "-m", "labelgate", "serve", "--db", url, "--port", str(port),
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    if profile is not None:
        spy = [
            "py-spy",
            "record",
            "--format",
            "raw",
            "--rate",
            os.environ.get("PYSPY_RATE", "100"),
            "--nonblocking",
            "--gil",
            "-o",
            str(profile),
        ]
        command = [*spy, "--subprocesses", "--", *command]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 60:
                raise SystemExit(f"server did not answer in 60 s:\n{log.read_text()}")
            time.sleep(0.02)
        yield proc, time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the clients -----------------------------------------------------------------------------


@dataclass
class Level:
    """What one level's clients saw."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    acked: dict[int, tuple[int, str]] = field(default_factory=dict)  # revision -> (task, key)
    replays: int = 0
    replay_mismatch: int = 0
    conflicts: int = 0
    resent: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    rss_peak_mb: float = 0.0


def boxes(rng: random.Random, width: int, height: int) -> list[dict[str, Any]]:
    """10 boxes inside the image, a little different on every save."""
    out = []
    for i in range(BOXES):
        x, y = rng.uniform(0, width - 60), rng.uniform(0, height - 60)
        w, h = rng.uniform(8, 58), rng.uniform(8, 58)
        out.append(
            {
                "id": i + 1,
                "class_id": 1 + i % 5,
                "kind": "box",
                "bbox": [round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2)],
            }
        )
    return out


class Dropped(Exception):
    """The connection broke or timed out before a whole answer came back."""


@dataclass
class Answer:
    """A status and a body: what the simulated annotators read of an answer."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class Connection:
    """One annotator's keep-alive HTTP/1.1 connection: a lean load-generating client.

    httpx spends about 1.2 ms of CPU per request, more than the server spends on a save,
    and on a 2-core machine the clients then take the cores the server is measured on and
    add their own queueing to every latency. This client writes the request bytes itself
    and reads an answer by its ``Content-Length`` (every API answer has one): about a
    tenth of that. A broken connection or a timeout raises :class:`Dropped` (the annotator
    re-sends with the same key) and the next request opens a new connection.
    """

    def __init__(self, host: str, port: int, token: str, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> Answer:
        return await self.request("GET", path, b"", "")

    async def put(self, path: str, content: bytes, headers: dict[str, str]) -> Answer:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return await self.request("PUT", path, content, extra)

    async def request(self, method: str, path: str, body: bytes, extra: str) -> Answer:
        try:
            return await asyncio.wait_for(self._exchange(method, path, body, extra), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.aclose()
            raise Dropped(type(exc).__name__) from exc

    async def _exchange(self, method: str, path: str, body: bytes, extra: str) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\n{self.head}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ValueError("an answer without Content-Length")
        return Answer(status, await self.reader.readexactly(length))

    async def aclose(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()


async def annotator(
    client: Connection,
    name: str,
    task: dict[str, Any],
    level: Level,
    deadline: float,
    seed: int,
) -> None:
    """Save the task until ``deadline`` like the editor: base revision, key, 409 -> reload."""
    rng = random.Random(seed)
    task_id = task["task_id"]
    path = f"/api/tasks/{task_id}/labels"
    head = (await client.get(f"/api/tasks/{task_id}")).json()["revision_id"]
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        key = f"{name}-{uuid.uuid4().hex[:12]}"
        body = json.dumps(
            {"base_revision_id": head, "objects": boxes(rng, task["width"], task["height"])}
        ).encode()
        sends = 2 if n % REPLAY_EVERY == 0 else 1
        first: int | None = None
        while sends:
            started = time.perf_counter()
            try:
                response = await client.put(
                    path,
                    content=body,
                    headers={"Idempotency-Key": key, "Content-Type": "application/json"},
                )
            except Dropped as exc:
                level.statuses[str(exc)] += 1
                if time.perf_counter() > deadline + 2 * REQUEST_TIMEOUT_S:
                    return  # the server is gone: the count afterwards tells what landed
                level.resent += 1  # the editor re-sends the same request: it must land once
                continue
            level.latencies.append(time.perf_counter() - started)
            level.statuses[str(response.status_code)] += 1
            sends -= 1
            if response.status_code == 200:
                saved = response.json()
                if first is None and not saved["replayed"]:
                    first = saved["revision_id"]
                    level.acked[first] = (task_id, key)
                    head = first
                elif first is None:  # a re-sent request whose first attempt had landed
                    first = head = saved["revision_id"]
                    level.acked[first] = (task_id, key)
                else:
                    level.replays += 1
                    if not saved["replayed"] or saved["revision_id"] != first:
                        level.replay_mismatch += 1
            elif response.status_code == 409:  # another tab saved first: reload, save again
                level.conflicts += 1
                for _ in range(10):  # a read racing saves may answer 409 "retry" itself
                    reloaded = await client.get(f"/api/tasks/{task_id}")
                    if reloaded.status_code != 409:
                        break
                    level.conflicts += 1
                if reloaded.status_code == 200:
                    head = reloaded.json()["revision_id"]
                else:
                    level.statuses[f"reload {reloaded.status_code}"] += 1
                break
            else:
                break


async def run_level(
    base: str, clients: list[tuple[str, str, dict[str, Any]]], seconds: float, pid: int
) -> Level:
    level = Level(len(clients))
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sessions = [Connection(host, int(port), token, REQUEST_TIMEOUT_S) for _, token, _ in clients]
    cpu_server, cpu_client = cpu_s(pid), time.process_time()
    with Sampler(pid) as sampler:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                annotator(session, name, task, level, deadline, seed=i)
                for i, (session, (name, _, task)) in enumerate(zip(sessions, clients))
            )
        )
        level.seconds = time.perf_counter() - started
    level.server_cpu_s = cpu_s(pid) - cpu_server
    level.client_cpu_s = time.process_time() - cpu_client
    level.rss_peak_mb = sampler.peak
    for session in sessions:
        await session.aclose()
    return level


def stale_save(base: str, token: str, task: dict[str, Any]) -> tuple[int, bool]:
    """A save on an outdated revision: (status, whether the head stayed where it was)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        current = client.get(f"/api/tasks/{task['task_id']}").json()["revision_id"]
        body = {"base_revision_id": current - 1 if current > 1 else None, "objects": []}
        response = client.put(f"/api/tasks/{task['task_id']}/labels", json=body)
        after = client.get(f"/api/tasks/{task['task_id']}").json()["revision_id"]
    return response.status_code, after == current


def integrity(db: Database, levels: list[Level], tasks: list[int]) -> dict[str, int]:
    """The database against the acknowledged saves."""
    acked: dict[int, tuple[int, str]] = {}
    for level in levels:
        acked.update(level.acked)
    with db.session() as s:
        rows = s.execute(
            select(RevisionRow.id, RevisionRow.task_id, RevisionRow.number, RevisionRow.request_id)
            .where(RevisionRow.task_id.in_(tasks))
            .order_by(RevisionRow.task_id, RevisionRow.number)
        ).all()
        objects = s.execute(
            select(func.count())
            .select_from(AnnotationRow)
            .join(RevisionRow, RevisionRow.id == AnnotationRow.revision_id)
            .where(RevisionRow.task_id.in_(tasks))
        ).scalar_one()
    stored = {r.id: r for r in rows}
    keys = Counter(r.request_id for r in rows)
    gaps = 0
    by_task: dict[int, list[int]] = {}
    for r in rows:
        by_task.setdefault(r.task_id, []).append(r.number)
    for numbers in by_task.values():
        gaps += numbers != list(range(1, len(numbers) + 1))
    wrong = sum(
        1
        for revision, (task, key) in acked.items()
        if revision in stored
        and (stored[revision].task_id != task or not str(stored[revision].request_id).endswith(key))
    )
    return {
        "acknowledged": len(acked),
        "revisions": len(rows),
        "lost": len(set(acked) - set(stored)),
        "unacknowledged": len(set(stored) - set(acked)),
        "duplicate_keys": sum(c - 1 for c in keys.values() if c > 1),
        "wrong_task_or_key": wrong,
        "numbering_gaps": gaps,
        "annotation_rows": int(objects),
        "expected_rows": BOXES * len(acked),
    }


def export(base: str, token: str, project: str, batch: int) -> tuple[float, int, int, int]:
    """Seconds from the export request to the downloaded file; (s, bytes, images, boxes)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        response = client.post(f"/api/projects/{project}/batches/{batch}/export?format=coco")
        if response.status_code != 202:
            raise SystemExit(f"export: {response.status_code} {response.text}")
        job = response.json()
        while job["state"] not in ("done", "failed"):
            time.sleep(0.005)
            job = client.get(f"/api/jobs/{job['id']}").json()
        if job["state"] != "done":
            raise SystemExit(f"export job failed: {job}")
        content = client.get(f"/api/jobs/{job['id']}/download").content
        seconds = time.perf_counter() - started
    coco = json.loads(content)
    return seconds, len(content), len(coco["images"]), len(coco["annotations"])


# --- the databases -------------------------------------------------------------------------


@contextmanager
def fresh_database(url: str | None) -> Iterator[str]:
    """A URL of an empty database: a temporary SQLite file, or a new PostgreSQL schema."""
    if url is None or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="labelgate-load-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'load.db'}"
        return
    schema = f"load_{uuid.uuid4().hex[:8]}"
    admin = Database(url)
    with admin.engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each level")
    parser.add_argument("--levels", default="1,10,50", help="concurrent clients per level")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--export-tasks", type=int, default=5000)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument(
        "--tabs",
        type=int,
        default=1,
        help="clients per annotator on the same task (2+: stale saves, 409 and reload)",
    )
    parser.add_argument(
        "--py-spy", type=Path, default=None, metavar="FILE", help="profile the server to FILE"
    )
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    people = [f"ann{i:02d}" for i in range(max(levels))]

    # the server verifies these hashes at its own login; the load needs only the tokens
    configure_hashing(time_cost=1, memory_cost_kib=8, parallelism=1)
    with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as tmp:
        db = Database(url)
        upgrade(db)
        started = time.perf_counter()
        program, _, _ = production_batch(
            db, "load-bench", people, len(people) * TASKS_PER_ANNOTATOR, seed=3
        )
        queues = {name: program.my_tasks(name) for name in people}
        tasks = {name: queue[0] for name, queue in queues.items()}
        login_tokens = tokens(db, [*people, MANAGER])
        if not args.skip_export:
            export_project, export_batch, export_boxes = deliver_export_batch(db, args.export_tasks)
        setup_s = time.perf_counter() - started
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "server.log"
        with server(url, port, Path(tmp) / "data", args.workers, log, args.py_spy) as (
            proc,
            startup_s,
        ):
            startup_cpu_s = cpu_s(proc.pid)
            time.sleep(1.0)
            idle_mb = rss_mb(proc.pid)
            results = []
            for n in levels:
                clients = [
                    (
                        name,
                        login_tokens[name],
                        {
                            "task_id": tasks[name].task_id,
                            "width": tasks[name].width,
                            "height": tasks[name].height,
                        },
                    )
                    for name in people[: max(1, n // args.tabs)]
                    for _ in range(args.tabs)
                ][:n]
                load = load_average()
                level = asyncio.run(run_level(base, clients, args.seconds, proc.pid))
                results.append((level, load))
            first = people[0]
            stale_status, stale_kept = stale_save(
                base,
                login_tokens[first],
                {"task_id": tasks[first].task_id},
            )
            exported = None
            if not args.skip_export:
                with Sampler(proc.pid) as sampler:
                    exported = export(base, login_tokens[MANAGER], export_project, export_batch)
                export_peak = sampler.peak
        checks = integrity(db, [lv for lv, _ in results], [t.task_id for t in tasks.values()])
        db.dispose()

    where = "PostgreSQL" if args.db and not args.db.startswith("sqlite") else "SQLite"
    print(
        f"database: {where}, {args.workers} worker(s); {BOXES} boxes per save, every "
        f"{REPLAY_EVERY}th save re-sent with its key; {args.tabs} client(s) per task; "
        f"set-up {setup_s:.1f} s\n"
    )
    print(
        f"{'clients':>7}{'saves/s':>9}{'acked':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'409':>5}{'replays':>8}{'errors':>8}{'srv cpu':>9}{'ms/req':>8}{'cli cpu':>9}"
        f"{'rss MB':>8}"
        f"  load (1/5/15 min)"
    )
    failed = False
    for level, load in results:
        q = np.percentile(np.array(level.latencies) * 1000, [50, 95, 99])
        errors = {k: v for k, v in level.statuses.items() if k not in ("200", "409")}
        failed |= bool(errors) or level.replay_mismatch > 0
        print(
            f"{level.clients:>7}{len(level.acked) / level.seconds:>9.1f}{len(level.acked):>7}"
            f"{q[0]:>8.1f}{q[1]:>8.1f}{q[2]:>8.1f}{level.conflicts:>5}{level.replays:>8}"
            f"{sum(errors.values()):>8}{level.server_cpu_s:>9.1f}"
            f"{level.server_cpu_s * 1000 / len(level.latencies):>8.2f}{level.client_cpu_s:>9.1f}"
            f"{level.rss_peak_mb:>8.0f}  {load}"
        )
        if errors:
            print(f"        errors by status: {dict(errors)}; re-sent after a drop: {level.resent}")
        if level.replay_mismatch:
            print(f"        {level.replay_mismatch} replays did not return the first answer")
    print(
        f"\nintegrity: {checks['acknowledged']} acknowledged saves, {checks['revisions']} "
        f"revisions in the database; lost {checks['lost']}, unacknowledged "
        f"{checks['unacknowledged']}, duplicate keys {checks['duplicate_keys']}, wrong task/key "
        f"{checks['wrong_task_or_key']}, numbering gaps {checks['numbering_gaps']}; annotation "
        f"rows {checks['annotation_rows']} (expected {checks['expected_rows']})"
    )
    print(f"stale save: HTTP {stale_status}, head unchanged: {stale_kept}")
    print(
        f"start-up: /api/health answered {startup_s:.2f} s after launch, "
        f"{startup_cpu_s:.2f} s of server CPU (goal < 3 s)"
    )
    print(f"server memory: idle {idle_mb:.0f} MB")
    if exported is not None:
        seconds, size, images, objects = exported
        print(
            f"export: {images:,} tasks, {objects:,} boxes to COCO through the job in "
            f"{seconds:.2f} s ({size / 1e6:.1f} MB; server peak {export_peak:.0f} MB; goal < 1 s)"
        )
        failed |= images != args.export_tasks or objects != export_boxes
    failed |= any(
        checks[k]
        for k in ("lost", "unacknowledged", "duplicate_keys", "wrong_task_or_key", "numbering_gaps")
    )
    failed |= checks["annotation_rows"] != checks["expected_rows"]
    failed |= stale_status != 409 or not stale_kept
    if failed:
        print("FAILED: see above")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
