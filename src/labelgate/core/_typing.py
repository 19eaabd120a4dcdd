"""Array aliases used across labelgate; shapes are documented where the arrays are used."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["AnyArray", "BoolArray", "FloatArray", "IntArray", "ObjectArray", "UInt8Array"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
UInt8Array = NDArray[np.uint8]
ObjectArray = NDArray[np.object_]
AnyArray = NDArray[Any]
