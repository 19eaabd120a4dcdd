"""``labelgate demo``: a complete run on generated data, on a fresh machine, in seconds.

Today the demo covers the foundation: it generates a reference data set (driving scenes,
Zipf classes, crowded clusters, many small objects), derives a second annotator's labels and
a model's predictions with known noise, writes the reference in every supported format,
reads each back and checks that boxes and classes survived, and reports what each format
had to drop. Later stages of the pipeline (comparison, QA gates, cost) extend it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.core.dataset import Dataset
from labelgate.core.generate import NoiseModel, Perturbation, generate_dataset, perturb
from labelgate.core.summary import DatasetSummary, summarize
from labelgate.formats.coco import write_coco
from labelgate.formats.roundtrip import RoundTrip, roundtrip

__all__ = ["DEMO_ANNOTATOR", "DEMO_MODEL", "DemoResult", "run_demo"]

#: The second annotator of the demo: slightly loose boxes, a few misses and swaps.
DEMO_ANNOTATOR = NoiseModel(bias=0.05, jitter=0.04, swap_probability=0.02)
#: The model of the demo: more misses of small objects, more false positives, scores.
DEMO_MODEL = NoiseModel(
    miss_base=0.05, miss_small_extra=0.4, jitter=0.06, false_positives_per_image=0.5
)

_TARGETS = {
    "coco": "coco/instances.json",
    "voc": "voc",
    "yolo": "yolo",
    "cvat": "cvat/annotations.xml",
    "labelstudio": "labelstudio/export.json",
}


@dataclass(frozen=True, slots=True)
class NoiseSummary:
    """What the noise model did to a label set, measured from its :class:`Perturbation`."""

    rows: int
    missed_rate: float
    missed_rate_small: float  # objects under 32 x 32 px
    missed_rate_large: float  # objects of 96 x 96 px and more
    swapped_rate: float
    duplicates: int
    false_positives: int

    @classmethod
    def of(cls, perturbation: Perturbation, reference: Dataset) -> NoiseSummary:
        """Measure a perturbation against the reference it came from."""
        area = reference.annotations.area
        small, large = area < 32**2, area >= 96**2
        missed = perturbation.missed
        return cls(
            rows=len(perturbation.annotations),
            missed_rate=float(missed.mean()) if len(missed) else 0.0,
            missed_rate_small=float(missed[small].mean()) if small.any() else 0.0,
            missed_rate_large=float(missed[large].mean()) if large.any() else 0.0,
            swapped_rate=float(perturbation.swapped.mean()) if len(perturbation.swapped) else 0.0,
            duplicates=int(perturbation.duplicate.sum()),
            false_positives=int(perturbation.false_positive.sum()),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rows": self.rows,
            "missed_rate": round(self.missed_rate, 4),
            "missed_rate_small": round(self.missed_rate_small, 4),
            "missed_rate_large": round(self.missed_rate_large, 4),
            "swapped_rate": round(self.swapped_rate, 4),
            "duplicates": self.duplicates,
            "false_positives": self.false_positives,
        }


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Everything the demo made and measured."""

    out: Path
    seed: int
    generate_seconds: float
    summary: DatasetSummary
    annotator: NoiseSummary
    model: NoiseSummary
    files: dict[str, Path]
    roundtrips: list[RoundTrip]

    @property
    def ok(self) -> bool:
        """True when every format gave back the boxes and classes it was given."""
        return all(r.agreement is not None and r.agreement.identical for r in self.roundtrips)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``labelgate demo --json``)."""
        return {
            "out": str(self.out),
            "seed": self.seed,
            "ok": self.ok,
            "generate_seconds": round(self.generate_seconds, 4),
            "reference": {"format": "coco", **self.summary.to_dict()},
            "annotator": self.annotator.to_dict(),
            "model": self.model.to_dict(),
            "files": {name: str(path) for name, path in self.files.items()},
            "roundtrips": [r.to_dict() for r in self.roundtrips],
        }


def run_demo(out: Path, *, images: int = 500, seed: int = 0, overwrite: bool = False) -> DemoResult:
    """Generate, perturb, write in every format, read back, and measure.

    Parameters
    ----------
    out
        Folder for everything the demo writes; refused when it is not empty unless
        ``overwrite``.
    images
        Number of generated images (about 20 objects each).
    seed
        Seed of the generator and the noise models.
    overwrite
        Replace the outputs of an earlier run.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} holds an earlier demo")
    started = time.perf_counter()
    reference = generate_dataset(images, seed=seed)
    generate_seconds = time.perf_counter() - started
    annotator = perturb(reference, DEMO_ANNOTATOR, seed=seed + 1, annotator_id=1)
    model = perturb(reference, DEMO_MODEL, seed=seed + 2, annotator_id=2, as_predictions=True)

    files = {
        "reference": out / "reference.json",
        "annotator": out / "annotator_b.json",
        "predictions": out / "predictions.json",
    }
    write_coco(reference, files["reference"], overwrite=overwrite)
    write_coco(
        reference.replace(annotations=annotator.annotations),
        files["annotator"],
        overwrite=overwrite,
    )
    write_coco(
        reference.replace(annotations=model.annotations),
        files["predictions"],
        overwrite=overwrite,
        results=True,
    )
    trips = [
        roundtrip(reference, name, out / "formats" / target, overwrite=overwrite)
        for name, target in _TARGETS.items()
    ]
    return DemoResult(
        out=out,
        seed=seed,
        generate_seconds=generate_seconds,
        summary=summarize(reference),
        annotator=NoiseSummary.of(annotator, reference),
        model=NoiseSummary.of(model, reference),
        files=files,
        roundtrips=trips,
    )
