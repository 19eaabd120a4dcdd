"""labelgate: run image annotation as a quality-gated production process.

The public API is flat: ``from labelgate import Annotations, read, write``. The program
layer (``Program``, ``Database``, ``load_spec``) is imported on first use, so that
``import labelgate`` for file work does not pay for SQLAlchemy and pydantic.
"""

from typing import Any

from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import AttributeSpec, AttributeType, ClassInfo, PrecisionTier, Taxonomy
from labelgate.errors import (
    ConflictError,
    FormatError,
    GateFailed,
    LabelgateError,
    PermissionDenied,
    SpecError,
    StoreError,
    ValidationError,
    WorkflowError,
)
from labelgate.formats.registry import FORMATS, detect_format, read, write

__version__ = "0.1.0"

_LAZY = {
    "Program": "labelgate.workflow.program",
    "Database": "labelgate.store.db",
    "ProgramSpec": "labelgate.spec",
    "load_spec": "labelgate.spec",
    "parse_spec": "labelgate.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labelgate' has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "Annotations",
    "AttributeColumn",
    "AttributeSpec",
    "AttributeType",
    "ClassInfo",
    "ConflictError",
    "Database",
    "Dataset",
    "FormatError",
    "GateFailed",
    "Images",
    "Kind",
    "LabelgateError",
    "PermissionDenied",
    "PrecisionTier",
    "Program",
    "ProgramSpec",
    "Ragged",
    "Source",
    "SpecError",
    "StoreError",
    "Taxonomy",
    "ValidationError",
    "WorkflowError",
    "__version__",
    "detect_format",
    "load_spec",
    "parse_spec",
    "read",
    "write",
]
