"""Format registry: detect a format from a path, then read or write through its module.

Each format module ``labelgate.formats.<module>`` defines ``read_<name>(path, *, errors=None)``,
``write_<name>(dataset, path, *, overwrite=False)`` and ``sniff_<name>(path) -> bool`` (a
cheap look at the path that never raises). Modules load lazily, so ``labelgate info`` on a
COCO file never imports the XML stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from labelgate.core.dataset import Dataset
from labelgate.errors import FormatError
from labelgate.formats._base import ErrorLog, WriteReport

__all__ = ["FORMATS", "FormatInfo", "detect_format", "read", "write"]


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """One supported format: its CLI name, module and a one-line description."""

    name: str
    module: str
    description: str
    layout: str  # "file" or "folder"


#: Supported formats in detection order (most specific sniff first).
FORMATS: dict[str, FormatInfo] = {
    info.name: info
    for info in (
        FormatInfo(
            "coco", "coco", "COCO instances / keypoints JSON, or a COCO results list", "file"
        ),
        FormatInfo(
            "labelstudio", "label_studio", "Label Studio JSON export (list of tasks)", "file"
        ),
        FormatInfo("cvat", "cvat", "CVAT for images 1.1 XML", "file"),
        FormatInfo("voc", "voc", "Pascal VOC XML folder (Annotations/*.xml)", "folder"),
        FormatInfo("yolo", "yolo", "YOLO txt labels with classes / data.yaml", "folder"),
    )
}


def _function(name: str, verb: str) -> Callable[..., Any]:
    info = FORMATS[name]
    module = importlib.import_module(f"labelgate.formats.{info.module}")
    return cast(Callable[..., Any], getattr(module, f"{verb}_{info.module}"))


def detect_format(path: Path | str) -> str:
    """Return the name of the format at ``path`` (file or folder).

    Raises
    ------
    FormatError
        Nothing there, or no format recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    for name in FORMATS:
        if _function(name, "sniff")(path):
            return name
    single = _single_file(path)
    if single is not None:
        for name in FORMATS:
            if _function(name, "sniff")(single):
                return name
    raise FormatError(
        f"cannot tell the format; expected one of {', '.join(FORMATS)} (pass --from)", path=path
    )


def _single_file(path: Path) -> Path | None:
    """The one annotation file (.json or .xml) of a folder that holds exactly one, else None.

    Lets ``labelgate info export/`` work on a folder a tool exported a single file into.
    """
    if not path.is_dir():
        return None
    candidates = [
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".xml")
    ]
    return candidates[0] if len(candidates) == 1 else None


def read(
    path: Path | str,
    format: str | None = None,
    *,
    errors: ErrorLog | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    """Read a data set, detecting the format unless ``format`` names it.

    Parameters
    ----------
    path
        A file (COCO, Label Studio, CVAT) or a folder (VOC, YOLO).
    format
        One of :data:`FORMATS`; detected when None.
    errors
        Pass ``ErrorLog(path, collect=True)`` to collect every problem instead of raising
        the first.
    image_size
        YOLO only: ``(width, height)`` of images that are not beside their labels (YOLO
        files hold normalized coordinates; every other format carries its sizes).
    """
    path = Path(path)
    name = format or detect_format(path)
    if FORMATS.get(name) is not None and FORMATS[name].layout == "file" and path.is_dir():
        path = _single_file(path) or path
    if name not in FORMATS:
        raise FormatError(
            f"unknown format {name!r}; expected one of {', '.join(FORMATS)}", path=path
        )
    options: dict[str, Any] = {"errors": errors}
    if image_size is not None:
        if name != "yolo":
            raise FormatError(
                f"an image size applies to YOLO only; this is {name}, which stores sizes",
                path=path,
            )
        options["image_size"] = image_size
    return cast(Dataset, _function(name, "read")(path, **options))


def write(
    dataset: Dataset, path: Path | str, format: str, *, overwrite: bool = False
) -> WriteReport:
    """Write a data set atomically; the report says what the format could not hold."""
    path = Path(path)
    if format not in FORMATS:
        raise FormatError(
            f"unknown format {format!r}; expected one of {', '.join(FORMATS)}", path=path
        )
    return cast(WriteReport, _function(format, "write")(dataset, path, overwrite=overwrite))
