"""The job kinds the API queues, by name: each runs from its row's JSON params alone.

===================  ==========  ==========================================================
kind                 idempotent  params
===================  ==========  ==========================================================
``report``           yes         ``project``
``export``           yes         ``project``, ``batch_id``, ``format``, ``accepted_only``,
                                 ``actor``; writes ``<data_dir>/jobs/<id>-<format>.json``
``import_images``    no          ``project``, ``actor``, ``staged`` (a folder under
                                 ``data_dir``), ``images`` (``[name, width, height]`` each)
``import_gold``      no          ``project``, ``actor``, ``staged`` (a folder under
                                 ``data_dir``), ``file`` (its name there), ``purpose``,
                                 ``format`` (or ``None``: detected)
===================  ==========  ==========================================================

Uploads are checked in the request and *staged* under ``<data_dir>/uploads/`` (a random
folder per upload) before the job is queued, so the job's row holds a path, not the bytes;
the job deletes its staging when it ends, done or failed. A handler acts as ``actor``, and
the workflow checks that user's rights again.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.api.jobs import JobRun, Progress, job_kind
from labelgate.api.uploads import safe_name, store_file
from labelgate.core.images import Images
from labelgate.errors import WorkflowError
from labelgate.formats.registry import detect_format, read, write
from labelgate.reports.program_report import build_report
from labelgate.workflow.program import Program

__all__ = ["stage_upload"]

UPLOADS = "uploads"


def stage_upload(data_dir: Path, files: list[tuple[str, bytes]]) -> Path:
    """Write checked uploads (safe relative names) to a fresh staging folder; the folder."""
    folder = (data_dir / UPLOADS / uuid.uuid4().hex).resolve()
    for name, data in files:
        store_file(folder, name, data)
    return folder


def _staged(run: JobRun) -> Path:
    """The staging folder named in the params, which must lie in ``data_dir/uploads``."""
    root = (run.data_dir / UPLOADS).resolve()
    path = Path(str(run.params["staged"])).resolve()
    if root not in path.parents:
        raise WorkflowError(f"job {run.id}: staged input {path} is outside {root}")
    return path


def _discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@job_kind("report", idempotent=True)
def report_job(run: JobRun, progress: Progress) -> Any:
    """The delivery report's JSON."""
    progress(0.1, "reading the program")
    return build_report(run.db, project=str(run.params["project"]))


@job_kind("export", idempotent=True)
def export_job(run: JobRun, progress: Progress) -> Any:
    """A batch's final labels as a file to download; counts as the result."""
    p = run.params
    program = Program(run.db, str(p["project"]))
    progress(0.1, "reading the batch's final labels")
    dataset = program.export(
        int(p["batch_id"]), accepted_only=bool(p["accepted_only"]), actor=str(p["actor"])
    )
    progress(0.6, f"writing {p['format']}")
    folder = run.data_dir / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.id}-{p['format']}.json"
    write(dataset, path, str(p["format"]))
    run.file = path
    return {"images": len(dataset.images), "objects": len(dataset.annotations)}


@job_kind("import_images", idempotent=False)
def import_images_job(run: JobRun, progress: Progress) -> Any:
    """Move staged images into the project's folder and register them."""
    p = run.params
    staged = _staged(run)
    try:
        program = Program(run.db, str(p["project"]))
        root = (run.data_dir / "images" / safe_name(str(p["project"]))).resolve()
        images = [(str(n), int(w), int(h)) for n, w, h in p["images"]]
        for i, (name, _, _) in enumerate(images):
            store_file(root, name, (staged / name).read_bytes())
            progress(0.8 * (i + 1) / len(images), f"stored {i + 1} of {len(images)}")
        _, known = program.images()
        first = int(known.id.max()) + 1 if len(known) else 1
        table = Images.create(
            id=np.arange(first, first + len(images), dtype=np.int64),
            file_name=[n for n, _, _ in images],
            width=[w for _, w, _ in images],
            height=[h for _, _, h in images],
        )
        program.import_images(table, actor=str(p["actor"]), root=root)
        return {"images": len(images), "image_ids": table.id.tolist()}
    finally:
        _discard(staged)


@job_kind("import_gold", idempotent=False)
def import_gold_job(run: JobRun, progress: Progress) -> Any:
    """Read a staged reference file whole, then store its answers as gold or honeypots."""
    p = run.params
    staged = _staged(run)
    try:
        program = Program(run.db, str(p["project"]))
        path = staged / str(p["file"])
        progress(0.2, "reading the file")
        dataset = read(path, str(p["format"]) if p.get("format") else detect_format(path))
        progress(0.6, "storing the answers")
        added = program.import_gold(dataset, purpose=str(p["purpose"]), actor=str(p["actor"]))
        return {"purpose": p["purpose"], "images": added}
    finally:
        _discard(staged)
