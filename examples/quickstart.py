"""The README's Python tour, runnable: generate data, read it, select, group, convert.

Run:  python3 examples/quickstart.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import labelgate as lg
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.formats.coco import write_coco


def main(out: Path) -> None:
    reference = generate_dataset(200, seed=0)
    write_coco(reference, out / "reference.json", overwrite=True)

    ds = lg.read(out / "reference.json")
    ann = ds.annotations
    print(f"{len(ds.images)} images, {len(ann)} boxes, classes {ds.taxonomy.names[:3]}...")

    person = ds.taxonomy.by_name("person").id
    area = (ann.bbox[:, 2] - ann.bbox[:, 0]) * (ann.bbox[:, 3] - ann.bbox[:, 1])
    people = ann[(ann.class_id == person) & (area < 32**2)]
    groups = people.group_by_image()
    print(
        f"{len(people)} small people on {len(groups)} images, at most {groups.sizes.max()} on one"
    )

    report = lg.write(ds, out / "voc_out", "voc", overwrite=True)
    print("VOC cannot hold:", ", ".join(f"{d.what} ({d.count})" for d in report.dropped))

    noisy = perturb(reference, NoiseModel(bias=0.05, swap_probability=0.02), seed=1)
    print(f"annotator B missed {noisy.missed.mean():.1%}, swapped {noisy.swapped.mean():.1%}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
