"""Mask and polygon IoU on flat pair lists: labelgate beside pycocotools.

Run:  python benchmarks/bench_iou.py [--images 100] [--per-image 20] [--size 200] [--repeat 3]

The same random masks (ellipses and rectangles, some with holes punched by a second
ellipse) and polygons (random star-shaped rings, a third of them with two rings), grouped
into images; every pair within an image is compared. pycocotools is called the way
COCOeval calls it, once per image on the compressed RLE dicts; labelgate once on the whole
pair list. Both run in this process on the same data; times are the median of ``--repeat``.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import pycocotools.mask as mask_util

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.iou import mask_iou_pairs, polygon_iou_pairs
from labelgate.core.masks import rle_bbox, rle_from_string
from labelgate.core.pairs import group_pairs
from labelgate.core.ragged import Ragged


def random_masks(rng: np.random.Generator, count: int, size: int) -> list[np.ndarray]:
    rows, cols = np.mgrid[:size, :size]
    out = []
    for i in range(count):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(5, size / 3, 2)
        if i % 3 == 0:
            mask = (abs(rows - cy) <= ry) & (abs(cols - cx) <= rx)
        else:
            mask = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        if i % 5 == 0:
            mask &= ((rows - cy) / (ry / 3)) ** 2 + ((cols - cx) / (rx / 3)) ** 2 > 1
        out.append(mask)
    return out


def random_rings(rng: np.random.Generator, count: int, size: int) -> list[list[np.ndarray]]:
    out = []
    for i in range(count):
        rings = []
        for _ in range(1 + (i % 3 == 0)):
            # inside the image: pycocotools clips its rasterized masks to it
            centre = rng.uniform(size / 4, 3 * size / 4, 2)
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            radius = rng.uniform(10, size / 4) * rng.uniform(0.6, 1.0, 16)
            rings.append(centre + radius[:, None] * np.c_[np.cos(angles), np.sin(angles)])
        out.append(rings)
    return out


def row(name: str, times: list[float], base: float, pairs: int) -> str:
    median = statistics.median(times)
    return (
        f"{name:<28}{median:9.4f}  {min(times):7.4f}..{max(times):7.4f}  "
        f"{pairs / median:12,.0f}  {base / median:8.1f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--per-image", type=int, default=20)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.images * args.per_image
    image_id = np.repeat(np.arange(args.images, dtype=np.int64), args.per_image)
    rows_a, rows_b = group_pairs(image_id, image_id)
    pairs = len(rows_a)

    masks = random_masks(rng, n, args.size)
    encoded = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    counts = Ragged.from_rows(
        [rle_from_string(e["counts"].decode("ascii")) for e in encoded], dtype=np.int64
    )
    size = np.full((n, 2), args.size, dtype=np.int64)
    mask_ann = Annotations.create(
        image_id=image_id,
        class_id=np.ones(n, np.int64),
        bbox=rle_bbox(counts, size),
        kind=np.full(n, Kind.MASK),
        rle_counts=counts,
        rle_size=size,
    )
    crowd = np.zeros(n, dtype=np.uint8)

    def masks_pycocotools() -> np.ndarray:
        out = []
        for image in range(args.images):
            group = encoded[image * args.per_image : (image + 1) * args.per_image]
            out.append(mask_util.iou(group, group, crowd[: len(group)]).reshape(-1))
        return np.concatenate(out)

    def masks_labelgate() -> np.ndarray:
        return mask_iou_pairs(mask_ann, rows_a, mask_ann, rows_b)

    parts = random_rings(rng, n, args.size)
    rings = [ring for rs in parts for ring in rs]
    polygon_ann = Annotations.create(
        image_id=image_id,
        class_id=np.ones(n, np.int64),
        bbox=np.array(
            [np.r_[np.concatenate(rs).min(axis=0), np.concatenate(rs).max(axis=0)] for rs in parts]
        ),
        kind=np.full(n, Kind.POLYGON),
        rings=Ragged.from_rows(rings),
        ring_offsets=np.r_[0, np.cumsum([len(rs) for rs in parts])],
    )
    flat = [[ring.reshape(-1).tolist() for ring in rs] for rs in parts]

    def polygons_pycocotools() -> np.ndarray:
        # COCOeval's segm path: rasterize each polygon (rings merged), then RLE IoU
        rles = [mask_util.merge(mask_util.frPyObjects(f, args.size, args.size)) for f in flat]
        out = []
        for image in range(args.images):
            group = rles[image * args.per_image : (image + 1) * args.per_image]
            out.append(mask_util.iou(group, group, crowd[: len(group)]).reshape(-1))
        return np.concatenate(out)

    def polygons_labelgate() -> np.ndarray:
        return polygon_iou_pairs(polygon_ann, rows_a, polygon_ann, rows_b)

    # the pair list is (image, a, b) ascending, the order of the per-image matrices
    print(
        f"data: {args.images} images x {args.per_image} objects, {args.size}x{args.size} px, "
        f"{pairs:,} pairs (every pair within an image), seed {args.seed}"
    )
    print(f"{'impl':<28}{'median s':>9}  {'min..max':>16}  {'pairs/s':>12}  {'vs pycocotools':>9}")
    for title, peer, ours in [
        ("mask IoU (RLE)", masks_pycocotools, masks_labelgate),
        ("polygon IoU", polygons_pycocotools, polygons_labelgate),
    ]:
        peer_times, expected = timed(peer, args.repeat)
        our_times, got = timed(ours, args.repeat)
        base = statistics.median(peer_times)
        difference = np.abs(got - expected).max()
        note = " (continuous vs rasterized)" if title.startswith("polygon") else ""
        print(f"-- {title}: max |labelgate - pycocotools| = {difference:.2e}{note}")
        print(row("pycocotools", peer_times, base, pairs))
        print(row("labelgate", our_times, base, pairs))
        if title.startswith("mask") and difference > 1e-12:
            print("mask IoU disagrees with pycocotools")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
