"""Program specs: the taxonomy, per-class SLAs, gates, assignment, prices and pools.

A spec is a TOML file (``docs/spec.md`` lists every key) read with :func:`load_spec` into a
frozen :class:`ProgramSpec`. Stage 1 of the pipeline: the spec is validated and locked
(:meth:`ProgramSpec.digest`) before any image is labelled.
"""

from labelgate.spec.checks import cross_check
from labelgate.spec.load import load_spec, parse_spec
from labelgate.spec.model import (
    DEFAULT_POOL_PRICE_MULTIPLES,
    PRICE_UNITS,
    Assignment,
    AttributeDef,
    ClassSLA,
    ClassSpec,
    EdgeCaseRule,
    Gates,
    Pool,
    Prices,
    ProgramSpec,
    ProjectInfo,
)

__all__ = [
    "DEFAULT_POOL_PRICE_MULTIPLES",
    "PRICE_UNITS",
    "Assignment",
    "AttributeDef",
    "ClassSLA",
    "ClassSpec",
    "EdgeCaseRule",
    "Gates",
    "Pool",
    "Prices",
    "ProgramSpec",
    "ProjectInfo",
    "cross_check",
    "load_spec",
    "parse_spec",
]
