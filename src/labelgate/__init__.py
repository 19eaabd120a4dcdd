"""labelgate: run image annotation as a quality-gated production process.

The public API is flat: ``from labelgate import Annotations, read, write``.
"""

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
    SpecError,
    StoreError,
    ValidationError,
)
from labelgate.formats.registry import FORMATS, detect_format, read, write

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "Annotations",
    "AttributeColumn",
    "AttributeSpec",
    "AttributeType",
    "ClassInfo",
    "ConflictError",
    "Dataset",
    "FormatError",
    "GateFailed",
    "Images",
    "Kind",
    "LabelgateError",
    "PrecisionTier",
    "Ragged",
    "Source",
    "SpecError",
    "StoreError",
    "Taxonomy",
    "ValidationError",
    "__version__",
    "detect_format",
    "read",
    "write",
]
