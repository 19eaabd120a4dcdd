"""Synthetic scenes as real image files: one class-specific shape per object, on a texture.

Every object of a data set (``labelgate.core.generate``) is drawn as the convex shape of its
class (an octagon for a car, an ellipse for a person, a diamond for a traffic sign, ...) in
the class colour, scaled to fill its box, on a background textured by scene type (open sky
over asphalt with lane dashes on a highway, grass verges in the suburbs, building facades
in town). Later objects hide earlier ones: objects are drawn by ``z_order``, then by the
bottom edge of their box (lower in the frame is nearer the camera), then by row.

**Exact extents.** A shape covers the pixels whose centres lie inside it, plus, in every
column of its box, at least one pixel, plus the pixels holding its top-most and bottom-most
vertices. So it touches all four edges of its box rounded to the pixel grid
(:func:`pixel_boxes`, within half a pixel of the data set's boxes), never leaves it, and
every pixel it covers meets the shape. The same column spans give the drawn pixels, the
COCO RLE masks (:func:`shapes_as_masks`) and, up to the rasterization, the polygons
(:func:`shapes_as_polygons`): ground truth for segmentation demos with real geometry.

**Occlusion.** A mask holds only what is seen: a z-buffer per image, painted by the same
column runs in draw order, gives each object its drawn pixels less those of every object
above it (``shapes_as_masks(..., amodal=True)`` gives whole shapes instead). ``occluded``
is measured, not guessed: more than :data:`OCCLUDED_HIDDEN_SHARE` of the drawn pixels
hidden, with the visible share as the attribute ``visibility`` (:func:`visible_fraction`,
:func:`measure_occlusion` for box truth). Boxes and polygons stay amodal (the whole
object's extent, as CVAT asks of an occluded object). Objects no pixel of which is seen
are dropped by default, as COCO annotates only what is visible.

Backgrounds are built at an eighth of the resolution with numpy, scaled up by Pillow and
given a film grain; each image draws from its own stream ``SeedSequence([seed, image_id])``,
so an image looks the same whichever subset or order it is rendered in.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from labelgate.core._typing import FloatArray, IntArray, UInt8Array
from labelgate.core.annotations import AttributeColumn, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.ragged import Ragged, gather_ranges
from labelgate.errors import ValidationError
from labelgate.formats._atomic import atomic_dir

Int32Array = NDArray[np.int32]

__all__ = [
    "CLASS_STYLES",
    "OCCLUDED_HIDDEN_SHARE",
    "ShapeStyle",
    "measure_occlusion",
    "pixel_boxes",
    "render_image",
    "render_scenes",
    "shapes_as_masks",
    "shapes_as_polygons",
    "snap_to_pixels",
    "visible_fraction",
]


@dataclass(frozen=True, slots=True)
class ShapeStyle:
    """How one class is drawn: a convex polygon in its unit box and an RGB colour.

    Parameters
    ----------
    name
        What the shape is (for people reading the images).
    vertices
        (v, 2) convex polygon in unit box coordinates (``x`` right, ``y`` down), counter-
        or clockwise; it must reach 0 and 1 on both axes, so the shape fills its box.
    colour
        RGB of the shape.
    """

    name: str
    vertices: tuple[tuple[float, float], ...]
    colour: tuple[int, int, int]


def _ellipse(points: int = 32) -> tuple[tuple[float, float], ...]:
    angle = 2 * np.pi * np.arange(points) / points
    return tuple(
        (round(0.5 + 0.5 * float(np.cos(a)), 12), round(0.5 + 0.5 * float(np.sin(a)), 12))
        for a in angle
    )


def _cut_rectangle(cut: float) -> tuple[tuple[float, float], ...]:
    c = cut
    return ((c, 0), (1 - c, 0), (1, c), (1, 1 - c), (1 - c, 1), (c, 1), (0, 1 - c), (0, c))


#: One style per class, in taxonomy order (class ``k`` of a larger taxonomy takes style
#: ``k mod 12``). Colours are saturated so that no shape blends into the grey, green and
#: brown backgrounds.
CLASS_STYLES: tuple[ShapeStyle, ...] = (
    ShapeStyle("octagon", _cut_rectangle(0.2), (205, 30, 35)),  # car
    ShapeStyle("ellipse", _ellipse(), (245, 170, 30)),  # person
    ShapeStyle("diamond", ((0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)), (25, 80, 225)),  # sign
    ShapeStyle("rectangle", ((0, 0), (1, 0), (1, 1), (0, 1)), (20, 20, 20)),  # light
    ShapeStyle("cab", ((0, 0), (0.7, 0), (1, 0.35), (1, 1), (0, 1)), (125, 55, 175)),  # truck
    ShapeStyle(
        "hexagon", ((0.25, 0), (0.75, 0), (1, 0.5), (0.75, 1), (0.25, 1), (0, 0.5)), (20, 200, 200)
    ),  # bicycle
    ShapeStyle("rounded rectangle", _cut_rectangle(0.08), (250, 215, 0)),  # bus
    ShapeStyle("triangle", ((0.5, 0), (1, 1), (0, 1)), (225, 40, 165)),  # motorcycle
    ShapeStyle("inverted triangle", ((0, 0), (1, 0), (0.5, 1)), (140, 85, 35)),  # dog
    ShapeStyle("trapezoid", ((0.2, 0), (0.8, 0), (1, 1), (0, 1)), (250, 140, 190)),  # stroller
    ShapeStyle(
        "heptagon",
        ((0.1, 0.2), (0.45, 0), (0.9, 0.1), (1, 0.55), (0.75, 1), (0.25, 0.9), (0, 0.6)),
        (150, 160, 30),
    ),  # debris
    ShapeStyle("ellipse", _ellipse(), (225, 225, 235)),  # smoke
)


def _envelope(vertices: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Breakpoints ``xs`` and the polygon's top and bottom ``y`` at each of them.

    Between two vertex abscissas both boundaries of a convex polygon are straight, so
    ``np.interp`` over these breakpoints gives the exact vertical extent at any ``x``.
    """
    xs = np.unique(vertices[:, 0])
    start, end = vertices, np.roll(vertices, -1, axis=0)
    x0, y0, x1, y1 = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    lo = np.minimum(x0, x1)[None, :]
    hi = np.maximum(x0, x1)[None, :]
    on = (xs[:, None] >= lo - 1e-12) & (xs[:, None] <= hi + 1e-12)
    dx = x1 - x0
    t = np.divide(xs[:, None] - x0, dx, out=np.zeros((len(xs), len(dx))), where=dx != 0)
    y = y0 + t * (y1 - y0)
    # a vertical edge spans both its end points at its abscissa
    y_low = np.where(dx == 0, np.minimum(y0, y1), y)
    y_high = np.where(dx == 0, np.maximum(y0, y1), y)
    top = np.where(on, y_low, np.inf).min(axis=1)
    bottom = np.where(on, y_high, -np.inf).max(axis=1)
    return xs, top, bottom


def _check_style(style: ShapeStyle) -> None:
    v = np.asarray(style.vertices, dtype=np.float64)
    edge = np.roll(v, -1, axis=0) - v
    cross = (
        edge[:, 0] * np.roll(edge, -1, axis=0)[:, 1] - edge[:, 1] * np.roll(edge, -1, axis=0)[:, 0]
    )
    convex = (cross >= -1e-12).all() or (cross <= 1e-12).all()
    fills = np.allclose(v.min(axis=0), 0.0) and np.allclose(v.max(axis=0), 1.0)
    if not (convex and fills):
        raise ValidationError(
            f"shape {style.name!r}: expected a convex polygon reaching 0 and 1 on both axes",
            field="vertices",
        )


@dataclass(frozen=True, slots=True)
class _Table:
    """Per-style lookup arrays derived once from :data:`CLASS_STYLES`."""

    envelopes: tuple[tuple[FloatArray, FloatArray, FloatArray], ...]
    top_x: FloatArray  # (s,) abscissa of the top-most vertices (middle of a flat top)
    bottom_x: FloatArray
    colours: UInt8Array  # (s, 3)


def _table(styles: Sequence[ShapeStyle]) -> _Table:
    envelopes, top_x, bottom_x = [], [], []
    for style in styles:
        _check_style(style)
        v = np.asarray(style.vertices, dtype=np.float64)
        envelopes.append(_envelope(v))
        top_x.append(float(v[np.isclose(v[:, 1], v[:, 1].min()), 0].mean()))
        bottom_x.append(float(v[np.isclose(v[:, 1], v[:, 1].max()), 0].mean()))
    return _Table(
        tuple(envelopes),
        np.array(top_x),
        np.array(bottom_x),
        np.array([s.colour for s in styles], dtype=np.uint8),
    )


_TABLE = _table(CLASS_STYLES)


def pixel_boxes(dataset: Dataset) -> IntArray:
    """(n, 4) int64 boxes rounded to the pixel grid: the exact extents of the drawn shapes.

    Each edge is rounded to the nearest pixel edge and a box is at least one pixel wide
    and high, kept inside its image (never left of or above it; nor right of or below it
    when its size is known). Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``,
    as in :func:`labelgate.core.masks.rle_bbox`.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> ds = generate_dataset(3, seed=0)
    >>> bool(np.abs(pixel_boxes(ds) - ds.annotations.bbox).max() <= 0.5)
    True
    """
    bbox = dataset.annotations.bbox
    if np.isnan(bbox).any():
        raise ValidationError("expected boxes, got a tag (NaN box)", field="bbox")
    out = np.floor(bbox + 0.5).astype(np.int64)
    row = dataset.images.index_of(dataset.annotations.image_id)
    if (row < 0).any():
        raise ValidationError(
            f"image {int(dataset.annotations.image_id[row < 0][0])} is not in the image table",
            field="image_id",
        )
    width = dataset.images.width[row]
    height = dataset.images.height[row]
    np.maximum(out, 0, out=out)  # no pixel left of or above the image
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        thin = out[:, hi] <= out[:, lo]
        out[thin, hi] = out[thin, lo] + 1
        over = (limit > 0) & (out[:, hi] > limit)
        out[over, hi] = limit[over]
        out[over, lo] = np.minimum(out[over, lo], limit[over] - 1)
    return out


def snap_to_pixels(dataset: Dataset) -> Dataset:
    """``dataset`` with every box replaced by :func:`pixel_boxes`: the drawn extents.

    A simulation that renders its images uses this as its ground truth, so the truth boxes
    are exactly the extents of the shapes in the files.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> snapped = snap_to_pixels(generate_dataset(2, seed=0)).annotations.bbox
    >>> bool((snapped == np.round(snapped)).all())
    True
    """
    boxes = pixel_boxes(dataset).astype(np.float64)
    ann = dataset.annotations
    return dataset.replace(annotations=ann.replace(bbox=boxes, area=_box_area(boxes)))


def _box_area(boxes: FloatArray) -> FloatArray:
    area: FloatArray = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return area


@dataclass(frozen=True, slots=True, eq=False)
class _Spans:
    """Every drawn shape as one run of rows per column of its box (CSR over objects).

    Column ``j`` (of all objects' columns) belongs to object ``owner[j]``, is image column
    ``col[j]`` and covers rows ``row0[j]..row1[j]`` inclusive.
    """

    boxes: IntArray  # (n, 4)
    style: IntArray  # (n,)
    offsets: IntArray  # (n + 1,) columns of object i: offsets[i]:offsets[i + 1]
    owner: IntArray
    col: IntArray
    row0: IntArray
    row1: IntArray


def _spans(dataset: Dataset) -> _Spans:
    """Rasterize every object's shape into column runs, vectorized over all objects."""
    boxes = pixel_boxes(dataset)
    n = len(boxes)
    position = dataset.taxonomy.position(dataset.annotations.class_id)
    style = np.where(position >= 0, position, 0) % len(CLASS_STYLES)
    x1, y1, x2, y2 = boxes.T
    widths = x2 - x1
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), widths)
    col = gather_ranges(x1, x2)
    u = (col + 0.5 - x1[owner]) / widths[owner]
    top = np.empty(len(col))
    bottom = np.empty(len(col))
    col_style = style[owner]
    for s, (xs, tops, bottoms) in enumerate(_TABLE.envelopes):
        mine = col_style == s
        top[mine] = np.interp(u[mine], xs, tops)
        bottom[mine] = np.interp(u[mine], xs, bottoms)
    height = (y2 - y1)[owner]
    y_top = y1[owner] + top * height
    y_bottom = y1[owner] + bottom * height
    # rows whose centre r + 0.5 lies in [y_top, y_bottom]
    row0 = np.ceil(y_top - 0.5).astype(np.int64)
    row1 = np.floor(y_bottom - 0.5).astype(np.int64)
    low, high = y1[owner], y2[owner] - 1
    row0 = np.clip(row0, low, high)
    row1 = np.clip(row1, low, high)
    # a sliver narrower than a pixel between centres still covers the pixel it crosses
    empty = row0 > row1
    middle = np.clip(np.floor((y_top + y_bottom) / 2), low, high).astype(np.int64)
    row0 = np.where(empty, middle, row0)
    row1 = np.where(empty, middle, row1)
    # the top-most and bottom-most vertices reach the box's top and bottom pixel rows
    if n:
        first = offsets[:-1]
        top_col = np.clip(np.floor(_TABLE.top_x[style] * widths), 0, widths - 1).astype(np.int64)
        bottom_col = np.clip(np.floor(_TABLE.bottom_x[style] * widths), 0, widths - 1)
        row0[first + top_col] = y1
        row1[first + bottom_col.astype(np.int64)] = y2 - 1
    return _Spans(boxes, style, offsets, owner, col, row0, row1)


def _draw_order(dataset: Dataset, boxes: IntArray) -> IntArray:
    ann = dataset.annotations
    rows = np.arange(len(ann))
    order: IntArray = np.lexsort((rows, boxes[:, 3], ann.z_order, ann.image_id))
    return order


# --- backgrounds ----------------------------------------------------------------------------

#: Scene type -> (horizon as a share of the height, sky RGB, ground RGB, verge RGB or None).
_SCENES: dict[str, tuple[float, tuple[int, int, int], tuple[int, int, int], Any]] = {
    "highway": (0.42, (150, 185, 220), (98, 98, 102), None),
    "suburban": (0.38, (165, 195, 225), (105, 103, 100), (70, 125, 55)),
    "urban": (0.30, (185, 195, 205), (88, 88, 92), None),
}
_DEFAULT_SCENE = (0.40, (170, 180, 190), (100, 100, 100), None)
_SCALE = 8  # backgrounds are composed at 1/8 resolution, then scaled up


def _background(width: int, height: int, scene_type: str, rng: np.random.Generator) -> UInt8Array:
    """(width, height, 3) textured background for one scene type, transposed."""
    horizon, sky, ground, verge = _SCENES.get(scene_type, _DEFAULT_SCENE)
    gh, gw = -(-height // _SCALE) + 1, -(-width // _SCALE) + 1
    y = (np.arange(gh, dtype=np.float64) + 0.5) / gh
    sky_rows = np.asarray(sky, dtype=np.float64) * (0.85 + 0.25 * y[:, None] / horizon)
    ground_rows = np.asarray(ground, dtype=np.float64) * (0.9 + 0.2 * (y[:, None] - horizon))
    column = np.where((y < horizon)[:, None], sky_rows, ground_rows)
    small = np.repeat(column[:, None, :], gw, axis=1)
    if verge is not None:  # grass verges left and right of the road
        x = (np.arange(gw) + 0.5) / gw
        road_half = 0.15 + 0.45 * np.clip((y - horizon) / (1 - horizon), 0, 1)
        grass = (y[:, None] >= horizon) & (np.abs(x[None, :] - 0.5) > road_half[:, None])
        small[grass] = verge
    if scene_type == "urban":  # facades: blocks of brick, concrete and glass
        edges = np.sort(rng.integers(0, gw, size=rng.integers(4, 9)))
        bounds = np.concatenate([[0], edges, [gw]])
        palette = np.array([[150, 95, 75], [170, 165, 155], [110, 130, 150], [125, 110, 95]])
        top_row = int(horizon * gh)
        for left, right in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            roof = int(rng.integers(0, max(top_row // 2, 1)))
            small[roof : top_row + 1, left:right] = palette[rng.integers(len(palette))]
    if scene_type == "highway":  # dashed lane markings
        lane_rows = np.flatnonzero(y > horizon + 0.05)
        for centre in (0.2, 0.8):
            x_at = (0.5 + (centre - 0.5) * (y[lane_rows] - horizon) / (1 - horizon)) * gw
            dash = (np.arange(len(lane_rows)) // 3) % 2 == 0
            small[lane_rows[dash], np.clip(x_at[dash].astype(np.int64), 0, gw - 1)] = 235
    # low-frequency mottling, then scale up (bilinear) and add a fine grain; all of it
    # transposed, column by column, which is how the shapes are painted (see _paint)
    coarse = rng.normal(128.0, 9.0, size=(-(-gh // 4) + 1, -(-gw // 4) + 1))
    smooth = Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize(
        (gw, gh), Image.Resampling.BILINEAR
    )
    mottle = np.asarray(smooth, dtype=np.float64) - 128.0
    # headroom for the grain added below: 0..2 * _GRAIN on top never passes 255
    small = np.clip(small + mottle[:, :, None] - _GRAIN, 0, 255 - 2 * _GRAIN).astype(np.uint8)
    small_t = np.ascontiguousarray(small.transpose(1, 0, 2))
    image = Image.fromarray(small_t).resize((height, width), Image.Resampling.BILINEAR)
    result: UInt8Array = np.array(image)
    # in place on uint8 (no overflow, see the headroom above): no int16 copy of the frame
    np.add(result, _grain(width, height), out=result)
    return result


_GRAIN = 6


@functools.lru_cache(maxsize=8)
def _grain(rows: int, columns: int) -> UInt8Array:
    """A fixed film grain, (rows, columns, 3) values 0..2 * _GRAIN, one per size (cached)."""
    rng = np.random.default_rng([rows, columns])
    tile = rng.integers(0, 2 * _GRAIN + 1, size=(128, 128, 3), dtype=np.uint8)
    reps = (-(-rows // 128), -(-columns // 128), 1)
    grain: UInt8Array = np.ascontiguousarray(np.tile(tile, reps)[:rows, :columns])
    grain.setflags(write=False)
    return grain


def _image_rng(seed: int, image_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, image_id]))


def _label_image(spans: _Spans, order: IntArray, first: int, last: int, height: int) -> Int32Array:
    """(last - first, height) int32 z-buffer of image columns ``first:last`` (transposed).

    Objects ``order`` (rows of ``spans``, all inside those columns) are painted in that
    order, by the same column runs :func:`_paint` uses, so a later object overwrites an
    earlier one exactly as in the image. A pixel holds the position in ``order`` of the
    object seen there, -1 where only the background is. Row-major, this is the image
    column-major: COCO's RLE order.
    """
    # transposed, each column run of a shape is one contiguous slice (as in _paint)
    label_t = np.full((last - first, height), -1, dtype=np.int32)
    offsets, cols, row0, row1 = spans.offsets, spans.col, spans.row0, spans.row1
    for k, i in enumerate(order.tolist()):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        for col, top, bottom in zip(
            (cols[lo:hi] - first).tolist(), row0[lo:hi].tolist(), row1[lo:hi].tolist()
        ):
            label_t[col, top : bottom + 1] = k
    return label_t


def _paint(canvas_t: UInt8Array, spans: _Spans, order: IntArray, rng: np.random.Generator) -> None:
    """Draw objects ``order`` (their rows) in that order onto ``canvas_t``, in place.

    ``canvas_t`` is (width, height, 3): the image transposed.
    """
    # the canvas is transposed, so each column run of a shape is one contiguous slice: a
    # slice assignment per column is ~10x faster than building a boolean mask per object
    brightness = rng.uniform(0.8, 1.1, size=len(order))
    colours = np.clip(_TABLE.colours[spans.style[order]] * brightness[:, None], 0, 255)
    colours = colours.astype(np.uint8)
    for k, i in enumerate(order.tolist()):
        lo, hi = int(spans.offsets[i]), int(spans.offsets[i + 1])
        colour = colours[k]
        for col, top, bottom in zip(
            spans.col[lo:hi].tolist(), spans.row0[lo:hi].tolist(), spans.row1[lo:hi].tolist()
        ):
            canvas_t[col, top : bottom + 1] = colour


def _visible_runs(dataset: Dataset, spans: _Spans) -> tuple[IntArray, IntArray, IntArray]:
    """Runs of visible pixels of every object: ``owner, start, end``, sorted by owner.

    Run ``j`` is pixels ``start[j]:end[j]`` (column-major indices into its image) of object
    row ``owner[j]``; within an object the runs are in pixel order, disjoint and not
    touching. One z-buffer per image (:func:`_label_image`, one slice per column run, as
    the image is painted), its runs found by comparing neighbouring pixels: no loop over
    pixels, and one encoding for all objects of all images (:func:`_rle`).
    """
    order = _draw_order(dataset, spans.boxes)
    images = dataset.images
    image_row = images.index_of(dataset.annotations.image_id)
    ordered_rows = image_row[order]
    present = np.unique(ordered_rows)
    starts = np.searchsorted(ordered_rows, present, side="left")
    stops = np.searchsorted(ordered_rows, present, side="right")
    owners, begins, ends = [], [], []
    for row, lo, hi in zip(present.tolist(), starts.tolist(), stops.tolist()):
        _, height = _image_size(dataset, row)
        rows = order[lo:hi]
        # only the columns some object of the image reaches can hold a run
        first, last = int(spans.boxes[rows, 0].min()), int(spans.boxes[rows, 2].max())
        flat = _label_image(spans, rows, first, last, height).ravel()
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        begin = np.concatenate([[0], change])
        end = np.concatenate([change, [flat.size]])
        label = flat[begin]
        seen = label >= 0
        owners.append(rows[label[seen]])
        begins.append(begin[seen] + first * height)
        ends.append(end[seen] + first * height)
    if not owners:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    owner = np.concatenate(owners)
    by_owner = np.argsort(owner, kind="stable")  # keeps each object's runs in pixel order
    return (
        owner[by_owner],
        np.concatenate(begins)[by_owner].astype(np.int64),
        np.concatenate(ends)[by_owner].astype(np.int64),
    )


def _amodal_runs(dataset: Dataset, spans: _Spans) -> tuple[IntArray, IntArray, IntArray]:
    """Runs of every object's whole shape, hidden parts included (see _visible_runs)."""
    row = dataset.images.index_of(dataset.annotations.image_id)
    height = dataset.images.height[row].astype(np.int64)[spans.owner]
    start = spans.col * height + spans.row0
    end = spans.col * height + spans.row1 + 1
    if not len(start):
        return spans.owner, start, end
    # the runs of neighbouring columns that meet (end of one == start of next) merge
    same = spans.owner[1:] == spans.owner[:-1]
    joined = np.concatenate([same & (end[:-1] == start[1:]), [False]])
    keep_start = ~np.concatenate([[False], joined[:-1]])
    return spans.owner[keep_start], start[keep_start], end[~joined]


def _rle(
    owner: IntArray, start: IntArray, end: IntArray, pixels: IntArray
) -> tuple[Ragged, FloatArray]:
    """COCO RLE counts and areas of ``len(pixels)`` masks from their runs of ones.

    ``owner, start, end`` as :func:`_visible_runs` gives them; ``pixels[i]`` is the size
    of mask ``i``'s image. Mask ``i`` with runs ``(s_0, e_0), (s_1, e_1), ...`` counts
    ``s_0, e_0 - s_0, s_1 - e_0, e_1 - s_1, ..., pixels[i] - e_last`` (``pixels[i]`` alone
    when it has no run).
    """
    n = len(pixels)
    m = len(start)
    count = np.bincount(owner, minlength=n)
    first = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    is_first = np.zeros(m, dtype=bool)
    is_first[first[:-1][count > 0]] = True
    previous_end = np.concatenate([[0], end[:-1]])
    # mask i starts at 2 * first[i] + i: two counts per run before it, one tail per mask
    values = np.empty(2 * m + n, dtype=np.int64)
    slot = 2 * np.arange(m) + owner
    values[slot] = np.where(is_first, start, start - previous_end)
    values[slot + 1] = end - start
    last_end = np.zeros(n, dtype=np.int64)
    last_end[count > 0] = end[first[1:][count > 0] - 1]
    values[2 * first[1:] + np.arange(n)] = pixels - last_end
    offsets = 2 * first + np.arange(n + 1)
    area = np.bincount(owner, weights=end - start, minlength=n).astype(np.float64)
    return Ragged(values, offsets), area


# --- public API ---------------------------------------------------------------------------


def render_image(dataset: Dataset, image_id: int, *, seed: int = 0) -> UInt8Array:
    """(height, width, 3) uint8 pixels of one image of ``dataset``.

    Parameters
    ----------
    dataset
        Boxes (no tags), their images (sizes must be known) and taxonomy.
    image_id
        Which image.
    seed
        Seed of the textures; with the image id it fixes every pixel.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> ds = generate_dataset(2, seed=0)
    >>> pixels = render_image(ds, 1, seed=0)
    >>> pixels.shape == (int(ds.images.height[0]), int(ds.images.width[0]), 3)
    True
    >>> bool((pixels == render_image(ds, 1, seed=0)).all())
    True
    """
    row = int(dataset.images.index_of(np.array([image_id]))[0])
    if row < 0:
        raise ValidationError(f"image {image_id} is not in the image table", field="image_id")
    one = dataset.select_images(dataset.images.id == image_id)
    spans = _spans(one)
    canvas_t = _render_one(one, spans, _draw_order(one, spans.boxes), 0, seed)
    return np.ascontiguousarray(canvas_t.transpose(1, 0, 2))


def _image_size(dataset: Dataset, row: int) -> tuple[int, int]:
    images = dataset.images
    width, height = int(images.width[row]), int(images.height[row])
    if width <= 0 or height <= 0:
        raise ValidationError(
            f"image {int(images.id[row])}: expected a known size, got {width}x{height}",
            field="width",
        )
    return width, height


def _render_one(
    dataset: Dataset, spans: _Spans, order: IntArray, row: int, seed: int
) -> UInt8Array:
    images = dataset.images
    width, height = _image_size(dataset, row)
    rng = _image_rng(seed, int(images.id[row]))
    canvas_t = _background(width, height, str(images.scene_type[row] or ""), rng)
    _paint(canvas_t, spans, order, rng)
    return canvas_t


def render_scenes(
    dataset: Dataset,
    out_dir: Path,
    *,
    seed: int = 0,
    overwrite: bool = False,
    jpeg_quality: int = 90,
    workers: int | None = None,
) -> list[Path]:
    """Render every image of ``dataset`` into ``out_dir`` under its ``file_name``.

    The format follows each name's suffix: ``.png`` is lossless (pixels exactly as
    :func:`render_image` gives them), ``.jpg`` / ``.jpeg`` is JPEG at ``jpeg_quality``.
    The folder is written atomically: it appears complete or not at all.

    Parameters
    ----------
    dataset
        Boxes (no tags), their images with known sizes, and the taxonomy.
    out_dir
        Target folder; refused when it exists and is not empty, unless ``overwrite``.
    seed
        Texture seed; the same seed gives the same files.
    overwrite
        Replace a non-empty ``out_dir`` (swapped only once the new folder is complete).
    jpeg_quality
        JPEG quality, default 90.
    workers
        Threads (Pillow encodes and numpy fills without the GIL); default the CPU count,
        at most 8.

    Returns
    -------
    list[Path]
        One path per image, in image-table order.

    Raises
    ------
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    ValidationError
        A tag, an image of unknown size, or an unsupported suffix.

    Examples
    --------
    >>> import tempfile
    >>> from labelgate.core.generate import generate_dataset
    >>> ds = generate_dataset(3, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = render_scenes(ds, Path(tmp) / "images", seed=0)
    ...     [p.name for p in paths], Image.open(paths[0]).size == (
    ...         int(ds.images.width[0]), int(ds.images.height[0]))
    (['000001.jpg', '000002.jpg', '000003.jpg'], True)
    """
    out_dir = Path(out_dir)
    names = [str(name) for name in dataset.images.file_name.tolist()]
    for name in names:
        if Path(name).suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ValidationError(
                f"{name!r}: expected a .png, .jpg or .jpeg file name", field="file_name"
            )
    spans = _spans(dataset)
    order = _draw_order(dataset, spans.boxes)
    image_row = dataset.images.index_of(dataset.annotations.image_id)
    ordered_rows = image_row[order]
    starts = np.searchsorted(ordered_rows, np.arange(len(dataset.images)), side="left")
    stops = np.searchsorted(ordered_rows, np.arange(len(dataset.images)), side="right")

    def write_one(row: int, folder: Path) -> Path:
        canvas_t = _render_one(dataset, spans, order[starts[row] : stops[row]], row, seed)
        target = folder / names[row]
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(canvas_t).transpose(Image.Transpose.TRANSPOSE)
        if target.suffix.lower() == ".png":
            picture.save(target, format="PNG", compress_level=1)
        else:
            picture.save(target, format="JPEG", quality=jpeg_quality)
        return out_dir / names[row]

    threads = workers or min(os.cpu_count() or 1, 8)
    with (
        atomic_dir(out_dir, overwrite=overwrite) as tmp,
        ThreadPoolExecutor(max_workers=threads) as pool,
    ):
        paths = list(pool.map(lambda r: write_one(r, tmp), range(len(names))))
    return paths


#: An object counts as ``occluded`` when objects drawn above it hide more than this share
#: of its drawn pixels (its visible fraction is below ``1 - OCCLUDED_HIDDEN_SHARE``).
OCCLUDED_HIDDEN_SHARE = 0.05


def _check_share(hidden_share: float) -> None:
    if not 0.0 <= hidden_share < 1.0:
        raise ValidationError(
            f"expected a hidden share in [0, 1), got {hidden_share}", field="hidden_share"
        )


def visible_fraction(dataset: Dataset) -> FloatArray:
    """(n,) share of each object's drawn pixels still seen once the objects above it are drawn.

    1.0 for an object nothing covers, 0.0 for one wholly hidden. Drawn pixels are those
    :func:`render_image` paints for the object alone; the objects above it are those drawn
    later (by ``z_order``, then the bottom edge of the box, then row).

    Examples
    --------
    >>> from labelgate.core.annotations import Annotations
    >>> from labelgate.core.images import Images
    >>> from labelgate.core.taxonomy import Taxonomy
    >>> ann = Annotations.create(image_id=[1, 1], class_id=[4, 4],
    ...     bbox=[[0, 0, 10, 10], [5, 0, 15, 10]])  # rectangles; the second is nearer
    >>> images = Images.create(id=[1], file_name=["a.png"], width=[20], height=[10])
    >>> taxonomy = Taxonomy.from_names(["car", "person", "sign", "light"])
    >>> visible_fraction(Dataset(ann, images, taxonomy)).tolist()
    [0.5, 1.0]
    """
    spans = _spans(dataset)
    owner, start, end = _visible_runs(dataset, spans)
    n = len(spans.boxes)
    visible = np.bincount(owner, weights=end - start, minlength=n)
    drawn = np.bincount(spans.owner, weights=spans.row1 - spans.row0 + 1, minlength=n)
    fraction: FloatArray = visible / np.maximum(drawn, 1)
    return fraction


def _visibility_column(fraction: FloatArray) -> AttributeColumn:
    return AttributeColumn(fraction.astype(np.float64), np.ones(len(fraction), dtype=bool))


def measure_occlusion(
    dataset: Dataset,
    *,
    hidden_share: float = OCCLUDED_HIDDEN_SHARE,
    keep_hidden: bool = False,
) -> Dataset:
    """``dataset`` with ``occluded`` measured on the rendered pixels, boxes unchanged.

    An object is ``occluded`` when the objects drawn above it hide more than
    ``hidden_share`` of its pixels; the generator's own flags are replaced. Its box stays
    the whole object's extent (amodal), as CVAT asks of an occluded object. The measured
    share is kept as the float attribute ``visibility`` (:func:`visible_fraction`).
    Rendering the result gives the same geometry: only wholly hidden objects go, and they
    paint no pixel of the image.

    Parameters
    ----------
    dataset
        Boxes (no tags), their images with known sizes, and the taxonomy.
    hidden_share
        Largest hidden share of a not-occluded object, in [0, 1); default
        :data:`OCCLUDED_HIDDEN_SHARE`.
    keep_hidden
        Keep objects no pixel of which is seen (``occluded``, ``visibility`` 0). By default
        they are dropped: nobody labelling the image can see them, and COCO annotates
        visible objects only.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = measure_occlusion(snap_to_pixels(generate_dataset(20, seed=0)))
    >>> seen = truth.annotations.attributes["visibility"].values
    >>> bool((truth.annotations.occluded == (seen < 0.95)).all()), bool(seen.min() > 0)
    (True, True)
    """
    _check_share(hidden_share)
    fraction = visible_fraction(dataset)
    occluded = fraction < 1.0 - hidden_share
    ann = dataset.annotations
    attributes = dict(ann.attributes)
    attributes["visibility"] = _visibility_column(fraction)
    marked = ann.replace(occluded=occluded, attributes=attributes)
    if not keep_hidden:
        marked = marked[fraction > 0]
    return dataset.replace(annotations=marked)


def shapes_as_masks(
    dataset: Dataset,
    *,
    amodal: bool = False,
    hidden_share: float = OCCLUDED_HIDDEN_SHARE,
    keep_hidden: bool = False,
) -> Dataset:
    """The drawn shapes as COCO RLE masks (kind MASK), one per object, same ids.

    Each mask holds exactly the pixels of the object seen in :func:`render_image`: its
    drawn pixels less those of the objects drawn above it (a z-buffer per image painted by
    the renderer's own column runs, then its runs of each object, all at once). ``area``
    is the mask's pixel count, as in COCO. The box stays the whole object's extent,
    :func:`pixel_boxes` (amodal; the tight box of the visible part is
    :func:`labelgate.core.masks.rle_bbox` of the mask). ``occluded`` and the attribute
    ``visibility`` are measured as in :func:`measure_occlusion`. An object nothing covers
    has exactly the mask it paints alone.

    Parameters
    ----------
    dataset
        Boxes (no tags), their images with known sizes, and the taxonomy.
    amodal
        Whole shapes instead, hidden parts included (no z-buffer; flags and attributes
        left as they are; every row kept).
    hidden_share
        As in :func:`measure_occlusion`.
    keep_hidden
        Keep wholly hidden objects with an empty mask (all zeros, ``area`` 0), so the rows
        are those of ``dataset``. By default they are dropped: COCO annotates visible
        objects only, and an empty mask is a miss no prediction can match.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> from labelgate.core.masks import rle_bbox
    >>> ds = generate_dataset(4, seed=0)
    >>> whole = shapes_as_masks(ds, amodal=True).annotations
    >>> bool((rle_bbox(whole.rle_counts, whole.rle_size) == pixel_boxes(ds)).all())
    True
    >>> seen = shapes_as_masks(ds, keep_hidden=True).annotations
    >>> bool((seen.bbox == pixel_boxes(ds)).all()), bool((seen.area <= whole.area).all())
    (True, True)
    """
    _check_share(hidden_share)
    spans = _spans(dataset)
    n = len(spans.boxes)
    row = dataset.images.index_of(dataset.annotations.image_id)
    height = dataset.images.height[row].astype(np.int64)
    width = dataset.images.width[row].astype(np.int64)
    ann = dataset.annotations
    common = {
        "kind": np.full(n, Kind.MASK, dtype=np.uint8),
        "bbox": spans.boxes.astype(np.float64),
        "rle_size": np.stack([height, width], axis=1),
    }
    if amodal:
        counts, area = _rle(*_amodal_runs(dataset, spans), height * width)
        return dataset.replace(annotations=ann.replace(rle_counts=counts, area=area, **common))
    counts, area = _rle(*_visible_runs(dataset, spans), height * width)
    drawn = np.bincount(spans.owner, weights=spans.row1 - spans.row0 + 1, minlength=n)
    fraction = area / drawn
    occluded = fraction < 1.0 - hidden_share
    attributes = dict(ann.attributes)
    attributes["visibility"] = _visibility_column(fraction)
    masks = ann.replace(
        rle_counts=counts, area=area, occluded=occluded, attributes=attributes, **common
    )
    if not keep_hidden:
        masks = masks[area > 0]
    return dataset.replace(annotations=masks)


def shapes_as_polygons(dataset: Dataset) -> Dataset:
    """The drawn shapes as polygons (kind POLYGON), one ring per object, same rows and ids.

    Each ring is the class shape scaled into :func:`pixel_boxes`, so its extent is exactly
    the box; rasterizing it by pixel centres gives the drawn pixels up to the one-pixel
    slivers and vertex pixels the renderer adds (see the module notes).

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> ds = generate_dataset(2, seed=0)
    >>> polygons = shapes_as_polygons(ds).annotations
    >>> bool((polygons.kind == Kind.POLYGON).all()), len(polygons.rings) == len(polygons)
    (True, True)
    """
    boxes = pixel_boxes(dataset).astype(np.float64)
    n = len(boxes)
    position = dataset.taxonomy.position(dataset.annotations.class_id)
    style = np.where(position >= 0, position, 0) % len(CLASS_STYLES)
    unit = [np.asarray(s.vertices, dtype=np.float64) for s in CLASS_STYLES]
    sizes = np.array([len(v) for v in unit], dtype=np.int64)
    stacked = np.concatenate(unit)
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    lengths = sizes[style]
    index = gather_ranges(starts[style], starts[style] + lengths)
    owner = np.repeat(np.arange(n), lengths)
    origin = boxes[owner, :2]
    extent = boxes[owner, 2:] - boxes[owner, :2]
    points = origin + stacked[index] * extent
    rings = Ragged(points, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    ann = dataset.annotations
    polygons = ann.replace(
        kind=np.full(n, Kind.POLYGON, dtype=np.uint8),
        bbox=boxes,
        rings=rings,
        ring_offsets=np.arange(n + 1, dtype=np.int64),
        area=np.full(n, np.nan),
    )
    polygons = polygons.replace(area=polygons.computed_area())
    return dataset.replace(annotations=polygons)
