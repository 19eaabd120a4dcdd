"""``labelgate demo``: a whole program on simulated annotators, on the embedded SQLite default.

It writes, into one folder:

- ``reference.json``, ``annotator_b.json``, ``predictions.json`` and ``formats/``: a
  generated data set, a second annotator and a model with known noise, and the reference
  round-tripped through every format (:func:`labelgate.formats.demo.run_demo`);
- ``images/``: every image of the program rendered as a real JPEG file (class shapes on
  textured street backgrounds, :mod:`labelgate.formats.render`), registered with its
  sha256 and size;
- ``labelgate.db``: a program run through all seven stages by simulated people
  (:mod:`labelgate.workflow.simulation`), every gate and audit event included; each batch
  is pre-labelled by a simulated model with calibrated scores
  (:class:`labelgate.core.simulate.PrelabelModel`) outside the spec's control group, so
  the report's pre-label and active-learning figures come from the program itself;
- ``report.json`` and ``report.html``: the delivery report of that program
  (:func:`labelgate.reports.program_report.build_report`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from labelgate.core.simulate import PrelabelModel
from labelgate.formats._atomic import write_bytes_atomic
from labelgate.formats.demo import DemoResult, run_demo
from labelgate.reports.html import render_html
from labelgate.reports.program_report import build_report
from labelgate.store.db import Database, upgrade
from labelgate.workflow.audit import verify_chain
from labelgate.workflow.simulation import SimulationConfig, run_simulation

__all__ = ["ProgramDemo", "demo_spec_text", "run_program_demo"]


def demo_spec_text() -> str:
    """The street-scene spec the demo runs under (also ``examples/spec.toml``)."""
    return resources.files("labelgate.spec").joinpath("street_scenes.toml").read_text()


@dataclass(frozen=True, slots=True)
class ProgramDemo:
    """Everything the demo did: the format round trip, the program, the report."""

    formats: DemoResult
    report: dict[str, Any]
    database: Path
    report_json: Path
    report_html: Path
    seconds: float
    audit_ok: bool
    images: Path | None = None

    @property
    def ok(self) -> bool:
        """Formats survived, every batch was delivered and the audit chain is intact."""
        delivered = all(b["state"] == "delivered" for b in self.report["batches"])
        return self.formats.ok and delivered and self.audit_ok

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: the format part, then the program's report."""
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "database": str(self.database),
            "report_json": str(self.report_json),
            "report_html": str(self.report_html),
            "images": str(self.images) if self.images is not None else None,
            "audit_ok": self.audit_ok,
            "formats": self.formats.to_dict(),
            "report": self.report,
        }


def run_program_demo(
    out: Path,
    *,
    images: int = 200,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> ProgramDemo:
    """Run the demo into ``out`` (refused when it holds an earlier demo, unless overwrite)."""
    started = time.perf_counter()
    out = Path(out)
    formats = run_demo(out, images=images, seed=seed, overwrite=overwrite)
    database = out / "labelgate.db"
    for stale in (
        database,
        database.with_name("labelgate.db-wal"),
        database.with_name("labelgate.db-shm"),
    ):
        stale.unlink(missing_ok=True)  # run_demo refused a non-empty folder unless overwrite
    image_root = out / "images"
    if image_root.is_dir():
        shutil.rmtree(image_root)  # an earlier demo's images, under the same overwrite
    db = Database(f"sqlite:///{database}")
    try:
        upgrade(db)
        config = SimulationConfig(
            images=images, batches=2, seed=seed, image_root=image_root, prelabel=PrelabelModel()
        )
        result = run_simulation(db, demo_spec_text(), config, progress=progress)
        report = build_report(db, truth=result.truth)
        report["demo"] = {
            "images": images,
            "seed": seed,
            "qualifications": result.qualifications,
        }
        audit = verify_chain(db)
    finally:
        db.dispose()
    report["audit"] = audit.to_dict()
    report_json = out / "report.json"
    report_html = out / "report.html"
    write_bytes_atomic(
        report_json, orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    write_bytes_atomic(report_html, render_html(report).encode())
    return ProgramDemo(
        formats=formats,
        report=report,
        database=database,
        report_json=report_json,
        report_html=report_html,
        seconds=time.perf_counter() - started,
        audit_ok=audit.ok,
        images=image_root,
    )
