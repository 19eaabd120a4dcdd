"""Pure computation: the columnar annotation model and everything measured on it (no I/O).

Only the data model is re-exported here. The measurement modules (``iou``, ``matching``,
``compare``, ``agreement``, ``evaluate``, ``generate``) are imported from their own
modules: they pull in scipy and shapely, which would triple the time of ``import labelgate``.
"""

from labelgate.core.annotations import (
    Annotations,
    AttributeColumn,
    Groups,
    Kind,
    Problem,
    Source,
    polygon_area,
    rle_area,
)
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged, gather_ranges
from labelgate.core.taxonomy import (
    TIER_RANGES,
    AttributeSpec,
    AttributeType,
    ClassInfo,
    PrecisionTier,
    Taxonomy,
)

__all__ = [
    "TIER_RANGES",
    "Annotations",
    "AttributeColumn",
    "AttributeSpec",
    "AttributeType",
    "ClassInfo",
    "Dataset",
    "Groups",
    "Images",
    "Kind",
    "PrecisionTier",
    "Problem",
    "Ragged",
    "Source",
    "Taxonomy",
    "gather_ranges",
    "polygon_area",
    "rle_area",
]
