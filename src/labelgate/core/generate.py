"""Seeded synthetic data: driving scenes with realistic boxes, and noisy copies of them.

Three layers, each built on the one before:

- :func:`generate_dataset` draws a reference data set from a :class:`SceneConfig`: image
  sizes, Zipf-distributed classes, scene types with their own mix of sparse, medium and
  crowded images, same-class clusters in crowded images, log-normal object sizes with
  per-class aspect ratios, and occluded / truncated flags.
- :func:`perturb` derives a second annotator's (or a model's) labels from a reference under
  a :class:`NoiseModel` (misses that depend on size, jitter, loose/tight bias, class swaps
  into a confusable class, duplicates, false positives, scores) and returns a
  :class:`Perturbation` that records what was done to every object: the ground truth that
  error-detection and agreement code is tested against.
- :func:`generate_pool` stacks several perturbed annotators into one container.

Everything is vectorized over the whole data set: one random draw per field, never a loop
over objects, so 20,000 images with ~400,000 boxes take a fraction of a second. The same
seed gives the same arrays on every platform (numpy's ``PCG64`` stream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray, ObjectArray
from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.taxonomy import ClassInfo, PrecisionTier, Taxonomy
from labelgate.errors import ValidationError

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_DENSITIES",
    "DEFAULT_SCENE_TYPES",
    "REFERENCE_ANNOTATOR_ID",
    "ClassProfile",
    "DensityBucket",
    "NoiseModel",
    "Perturbation",
    "SceneConfig",
    "SceneType",
    "default_confusable",
    "generate_dataset",
    "generate_pool",
    "perturb",
]

#: ``annotator_id`` of the reference labels drawn by :func:`generate_dataset`; perturbed
#: annotators are numbered from 1.
REFERENCE_ANNOTATOR_ID = 0

Seed = int | np.random.SeedSequence


# --- scene configuration -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassProfile:
    """How one class looks in generated images.

    Parameters
    ----------
    name
        Class name.
    supercategory
        COCO supercategory; :func:`default_confusable` pairs classes within one.
    tier
        Precision tier of the class (see :class:`~labelgate.core.taxonomy.PrecisionTier`).
    iou_threshold
        IoU threshold within the tier's range; ``None`` takes the tier's default.
    aspect_ratio
        Median width / height of its boxes (a person is tall, < 1; a car is wide, > 1).
    relative_size
        Median ``sqrt(area) / image diagonal`` of its boxes.
    """

    name: str
    supercategory: str
    tier: PrecisionTier
    iou_threshold: float | None
    aspect_ratio: float
    relative_size: float

    def info(self, class_id: int) -> ClassInfo:
        """Return the taxonomy entry of this class under ``class_id``."""
        return ClassInfo(class_id, self.name, self.supercategory, self.tier, self.iou_threshold)


_L, _S, _T = PrecisionTier.LOOSE, PrecisionTier.STANDARD, PrecisionTier.TIGHT

#: Twelve driving / robotics classes, most frequent first (the Zipf rank is the position).
#: Sizes put the median person at ~50 px on a 1280x720 image and the median traffic sign
#: at ~30 px, so a large share of objects is COCO-small (< 32 x 32 px). Smoke and debris
#: are amorphous (loose tier, IoU 0.5); people and traffic signs are safety-critical and
#: small (tight tier, 0.75-0.85).
DEFAULT_CLASSES: tuple[ClassProfile, ...] = (
    ClassProfile("car", "vehicle", _S, 0.7, 1.6, 0.06),
    ClassProfile("person", "person", _T, 0.75, 0.41, 0.035),
    ClassProfile("traffic sign", "traffic control", _T, 0.85, 1.0, 0.02),
    ClassProfile("traffic light", "traffic control", _T, 0.8, 0.45, 0.02),
    ClassProfile("truck", "vehicle", _S, 0.7, 1.4, 0.1),
    ClassProfile("bicycle", "two-wheeler", _S, 0.7, 1.5, 0.04),
    ClassProfile("bus", "vehicle", _S, 0.7, 1.8, 0.13),
    ClassProfile("motorcycle", "two-wheeler", _S, 0.7, 1.3, 0.045),
    ClassProfile("dog", "animal", _S, 0.65, 1.3, 0.03),
    ClassProfile("stroller", "person", _S, 0.7, 0.8, 0.035),
    ClassProfile("debris", "hazard", _L, 0.5, 1.6, 0.025),
    ClassProfile("smoke", "hazard", _L, 0.5, 1.3, 0.15),
)


@dataclass(frozen=True, slots=True)
class DensityBucket:
    """How many objects an image of one density holds.

    The count is uniform over ``min_objects..max_objects``; with ``overflow_probability``
    it is instead ``max_objects`` plus a geometric overflow of mean ``overflow_mean``
    (a crowded street with 30+ pedestrians).

    Parameters
    ----------
    name
        Density name, stored as the image's tag.
    min_objects, max_objects
        Inclusive bounds of the uniform part; ``1 <= min_objects <= max_objects``.
    overflow_probability
        Share of images past ``max_objects``; default 0.
    overflow_mean
        Mean number of objects past ``max_objects`` in those images; default 0.
    clustered
        Whether objects of this density gather in same-class clusters; default False.
    """

    name: str
    min_objects: int
    max_objects: int
    overflow_probability: float = 0.0
    overflow_mean: float = 0.0
    clustered: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValidationError(
                f"density {self.name!r}: expected 0 <= min_objects <= max_objects, "
                f"got {self.min_objects}..{self.max_objects}",
                field="densities",
            )
        if not 0.0 <= self.overflow_probability <= 1.0 or (
            self.overflow_probability > 0 and self.overflow_mean < 1.0
        ):
            raise ValidationError(
                f"density {self.name!r}: expected overflow_probability in [0, 1] and "
                f"overflow_mean >= 1, got {self.overflow_probability}, {self.overflow_mean}",
                field="densities",
            )

    @property
    def mean_objects(self) -> float:
        """Expected objects per image of this density."""
        uniform = (self.min_objects + self.max_objects) / 2
        overflow = self.max_objects + self.overflow_mean
        return (1 - self.overflow_probability) * uniform + self.overflow_probability * overflow


#: Sparse (1-3 objects), medium (4-10) and crowded (11-30, 28 % of crowded images past 30,
#: by 15 on average, with same-class clusters).
DEFAULT_DENSITIES: tuple[DensityBucket, ...] = (
    DensityBucket("sparse", 1, 3),
    DensityBucket("medium", 4, 10),
    DensityBucket("crowded", 11, 30, overflow_probability=0.28, overflow_mean=15.0, clustered=True),
)


@dataclass(frozen=True, slots=True)
class SceneType:
    """A kind of scene, its share of images and its own mix of densities.

    Parameters
    ----------
    name
        Stored in ``Images.scene_type``.
    probability
        Share of images of this scene type.
    density_mix
        Probability of each :class:`DensityBucket` of the config, in its order.
    """

    name: str
    probability: float
    density_mix: tuple[float, ...]


#: Highways are mostly sparse or medium; city streets mostly crowded. With
#: :data:`DEFAULT_DENSITIES` the mix gives ~20 objects per image.
DEFAULT_SCENE_TYPES: tuple[SceneType, ...] = (
    SceneType("highway", 0.25, (0.35, 0.35, 0.30)),
    SceneType("suburban", 0.30, (0.10, 0.25, 0.65)),
    SceneType("urban", 0.45, (0.02, 0.10, 0.88)),
)


def _check_probabilities(values: Sequence[float], name: str) -> FloatArray:
    """Return ``values`` as an array after checking they are a probability vector."""
    p: FloatArray = np.asarray(values, dtype=np.float64)
    if p.ndim != 1 or not len(p) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise ValidationError(
            f"expected non-negative probabilities summing to 1, got {list(values)}", field=name
        )
    normalized: FloatArray = p / p.sum()
    return normalized


@dataclass(frozen=True, slots=True)
class SceneConfig:
    """What :func:`generate_dataset` draws; every default is documented here.

    Parameters
    ----------
    image_sizes
        ``(width, height)`` choices; default 640x480, 1280x720 and 1920x1080.
    image_size_probabilities
        Probability of each size; default 0.2, 0.5, 0.3.
    classes
        Class profiles, most frequent first; default :data:`DEFAULT_CLASSES` (12 classes).
    zipf_exponent
        Class ``k`` (1-based rank) has frequency proportional to ``k ** -zipf_exponent``;
        default 1.0 (car is ~12x as frequent as smoke).
    densities
        Density buckets; default :data:`DEFAULT_DENSITIES`.
    scene_types
        Scene types with their density mixes; default :data:`DEFAULT_SCENE_TYPES`.
    size_sigma
        Standard deviation of ``log(relative size)`` around the class median; default 0.7.
    aspect_sigma
        Standard deviation of ``log(aspect ratio)`` around the class median; default 0.2.
    max_fill
        Largest box side as a share of the image side; default 0.9.
    min_size_px
        Smallest box side in pixels; default 2.0.
    cluster_fraction
        Share of objects in clustered densities that belong to a cluster; default 0.5.
    max_clusters
        Clusters per clustered image, uniform over ``1..max_clusters``; default 3.
    cluster_spread
        Standard deviation of an object's centre around its cluster centre, as a share
        of the image diagonal; default 0.05.
    vertical_beta
        Beta parameters of free objects' vertical centre (0 top, 1 bottom); default
        (2.0, 2.0): objects gather in the middle band, along the road.
    occluded_probability
        Probability a free object is occluded; default 0.1.
    clustered_occluded_probability
        Probability a clustered object is occluded; default 0.4.

    Examples
    --------
    >>> config = SceneConfig()
    >>> len(config.classes), round(config.mean_objects_per_image, 1)
    (12, 19.9)
    >>> SceneConfig(zipf_exponent=2.0).class_probabilities[:3].round(3).tolist()
    [0.639, 0.16, 0.071]
    """

    image_sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080))
    image_size_probabilities: tuple[float, ...] = (0.2, 0.5, 0.3)
    classes: tuple[ClassProfile, ...] = DEFAULT_CLASSES
    zipf_exponent: float = 1.0
    densities: tuple[DensityBucket, ...] = DEFAULT_DENSITIES
    scene_types: tuple[SceneType, ...] = DEFAULT_SCENE_TYPES
    size_sigma: float = 0.7
    aspect_sigma: float = 0.2
    max_fill: float = 0.9
    min_size_px: float = 2.0
    cluster_fraction: float = 0.5
    max_clusters: int = 3
    cluster_spread: float = 0.05
    vertical_beta: tuple[float, float] = (2.0, 2.0)
    occluded_probability: float = 0.1
    clustered_occluded_probability: float = 0.4

    def __post_init__(self) -> None:
        if len(self.image_sizes) != len(self.image_size_probabilities):
            raise ValidationError(
                f"expected one probability per image size, got {len(self.image_sizes)} sizes "
                f"and {len(self.image_size_probabilities)} probabilities",
                field="image_size_probabilities",
            )
        _check_probabilities(self.image_size_probabilities, "image_size_probabilities")
        if any(w <= 0 or h <= 0 for w, h in self.image_sizes):
            raise ValidationError(
                f"expected positive sizes, got {self.image_sizes}", field="image_sizes"
            )
        if not self.classes:
            raise ValidationError("expected at least one class", field="classes")
        _check_probabilities([s.probability for s in self.scene_types], "scene_types")
        for scene in self.scene_types:
            if len(scene.density_mix) != len(self.densities):
                raise ValidationError(
                    f"scene {scene.name!r}: expected {len(self.densities)} density "
                    f"probabilities, got {len(scene.density_mix)}",
                    field="scene_types",
                )
            _check_probabilities(scene.density_mix, "scene_types")
        if self.max_clusters < 1:
            raise ValidationError(f"expected >= 1, got {self.max_clusters}", field="max_clusters")

    @property
    def class_probabilities(self) -> FloatArray:
        """(k,) the Zipf frequency of each class, in class order."""
        rank = np.arange(1, len(self.classes) + 1, dtype=np.float64)
        weights = rank**-self.zipf_exponent
        return weights / weights.sum()  # type: ignore[no-any-return]  # numpy stubs: Any

    @property
    def mean_objects_per_image(self) -> float:
        """Expected objects per image over the scene and density mixes."""
        scene_p = np.array([s.probability for s in self.scene_types])
        mix = np.array([s.density_mix for s in self.scene_types])
        means = np.array([d.mean_objects for d in self.densities])
        return float(scene_p @ mix @ means)

    def taxonomy(self) -> Taxonomy:
        """Return the taxonomy of generated data sets: class ids ``1..k`` in class order."""
        return Taxonomy(tuple(c.info(i + 1) for i, c in enumerate(self.classes)))


# --- the reference data set ---------------------------------------------------------------


def _categorical_rows(rng: np.random.Generator, probabilities: FloatArray) -> IntArray:
    """Draw one category per row of an (n, k) probability table, vectorized."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    drawn: IntArray = np.minimum((u >= cumulative).sum(axis=1), probabilities.shape[1] - 1)
    return drawn.astype(np.int64)


def _object_array(values: Sequence[object], index: IntArray) -> ObjectArray:
    """``values[index]`` as a 1-d object array (tuples stay single elements)."""
    table = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # one entry per distinct value, not per row
        table[i] = value
    selected: ObjectArray = table[index]
    return selected


def _file_names(ids: IntArray) -> ObjectArray:
    """``000001.jpg``-style names, zero-padded to at least six digits."""
    if not len(ids):  # np.char.zfill fails on empty input (numpy 2.x)
        return np.empty(0, dtype=object)
    width = max(6, len(str(int(ids.max()))))
    names = np.char.add(np.char.zfill(ids.astype(str), width), ".jpg")
    return names.astype(object)


def generate_dataset(
    n_images: int, *, seed: Seed = 0, config: SceneConfig | None = None
) -> Dataset:
    """Draw a synthetic reference data set of driving scenes.

    Each image gets a size and a scene type; the scene type's density mix picks a density
    bucket (stored as the image's single tag), which sets the object count. Classes follow
    the config's Zipf frequencies. In clustered densities a share of the objects gathers
    around 1..``max_clusters`` cluster centres per image, each cluster of one class, and is
    occluded more often. Box sizes are log-normal relative to the image diagonal with a
    per-class median and aspect ratio; boxes are clipped to the image and flagged
    ``truncated`` where clipped.

    Parameters
    ----------
    n_images
        Number of images, ids ``1..n_images``, named ``000001.jpg``...
    seed
        Seed of the random stream; the same seed gives identical arrays. Default 0.
    config
        Scene parameters; default ``SceneConfig()`` (~20 objects per image).

    Returns
    -------
    Dataset
        Boxes with ids ``1..n`` sorted by image, score NaN, source HUMAN, ``annotator_id``
        :data:`REFERENCE_ANNOTATOR_ID`; taxonomy ``config.taxonomy()``.

    Raises
    ------
    ValidationError
        If ``n_images`` is negative.

    Examples
    --------
    >>> ds = generate_dataset(100, seed=1)
    >>> len(ds.images), ds.images.file_name[0], ds.taxonomy.names[:3]
    (100, '000001.jpg', ('car', 'person', 'traffic sign'))
    >>> 1500 < len(ds.annotations) < 2500
    True
    >>> bool((ds.annotations.bbox == generate_dataset(100, seed=1).annotations.bbox).all())
    True
    """
    if n_images < 0:
        raise ValidationError(f"expected n_images >= 0, got {n_images}", field="n_images")
    config = config or SceneConfig()
    rng = np.random.default_rng(seed)

    # --- images: size, scene type, density, object count
    sizes = np.array(config.image_sizes, dtype=np.int64)
    size_row = rng.choice(
        len(sizes), size=n_images, p=_check_probabilities(config.image_size_probabilities, "")
    )
    width, height = sizes[size_row, 0], sizes[size_row, 1]
    scene_p = np.array([s.probability for s in config.scene_types])
    scene = rng.choice(len(scene_p), size=n_images, p=scene_p / scene_p.sum())
    mix = np.array([s.density_mix for s in config.scene_types], dtype=np.float64)
    density = _categorical_rows(rng, mix[scene])
    low = np.array([d.min_objects for d in config.densities], dtype=np.int64)[density]
    high = np.array([d.max_objects for d in config.densities], dtype=np.int64)[density]
    overflow_p = np.array([d.overflow_probability for d in config.densities])[density]
    overflow_mean = np.array([max(d.overflow_mean, 1.0) for d in config.densities])[density]
    counts = rng.integers(low, high + 1)
    overflow = rng.random(n_images) < overflow_p
    counts = np.where(overflow, high + rng.geometric(1.0 / overflow_mean), counts)
    clustered_image = np.array([d.clustered for d in config.densities], dtype=bool)[density]

    # --- objects: one row each, sorted by image
    n = int(counts.sum())
    image_row = np.repeat(np.arange(n_images, dtype=np.int64), counts)
    image_w = width[image_row].astype(np.float64)
    image_h = height[image_row].astype(np.float64)
    diagonal = np.hypot(image_w, image_h)
    class_p = config.class_probabilities
    class_pos = rng.choice(len(class_p), size=n, p=class_p)

    # clusters: 1..max_clusters per clustered image, each with a class and a centre
    n_clusters = np.where(clustered_image, rng.integers(1, config.max_clusters + 1, n_images), 0)
    cluster_image = np.repeat(np.arange(n_images, dtype=np.int64), n_clusters)
    cluster_x = rng.random(len(cluster_image)) * width[cluster_image]
    cluster_y = rng.beta(*config.vertical_beta, size=len(cluster_image)) * height[cluster_image]
    cluster_class = rng.choice(len(class_p), size=len(cluster_image), p=class_p)
    first_cluster = np.cumsum(n_clusters) - n_clusters
    in_cluster = clustered_image[image_row] & (rng.random(n) < config.cluster_fraction)
    local = (rng.random(n) * n_clusters[image_row]).astype(np.int64)
    cluster = np.where(in_cluster, first_cluster[image_row] + local, 0)
    class_pos = np.where(in_cluster, cluster_class[cluster] if len(cluster_class) else 0, class_pos)

    # size and shape: log-normal around the class medians
    median_size = np.array([c.relative_size for c in config.classes])[class_pos]
    median_aspect = np.array([c.aspect_ratio for c in config.classes])[class_pos]
    side = diagonal * median_size * np.exp(config.size_sigma * rng.standard_normal(n))
    aspect = median_aspect * np.exp(config.aspect_sigma * rng.standard_normal(n))
    box_w, box_h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    shrink = np.minimum(1.0, config.max_fill * np.minimum(image_w / box_w, image_h / box_h))
    box_w = np.maximum(box_w * shrink, config.min_size_px)
    box_h = np.maximum(box_h * shrink, config.min_size_px)

    # centres: free objects spread over the road band, clustered ones around their centre
    spread = config.cluster_spread * diagonal
    free_x = rng.random(n) * image_w
    free_y = rng.beta(*config.vertical_beta, size=n) * image_h
    near_x = cluster_x[cluster] + spread * rng.standard_normal(n) if len(cluster_x) else free_x
    near_y = cluster_y[cluster] + spread * rng.standard_normal(n) if len(cluster_y) else free_y
    centre_x = np.clip(np.where(in_cluster, near_x, free_x), 0.0, image_w)
    centre_y = np.clip(np.where(in_cluster, near_y, free_y), 0.0, image_h)
    raw = np.stack(
        [centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2],
        axis=1,
    )
    bbox = _clip(raw, image_w, image_h)
    truncated = (bbox != raw).any(axis=1)
    occluded = rng.random(n) < np.where(
        in_cluster, config.clustered_occluded_probability, config.occluded_probability
    )

    image_ids = np.arange(1, n_images + 1, dtype=np.int64)
    images = Images(
        id=image_ids,
        file_name=_file_names(image_ids),
        width=width,
        height=height,
        scene_type=_object_array([s.name for s in config.scene_types], scene),
        tags=_object_array([(d.name,) for d in config.densities], density),
    )
    annotations = Annotations.create(
        image_id=image_ids[image_row],
        class_id=class_pos + 1,
        bbox=bbox,
        annotator_id=np.full(n, REFERENCE_ANNOTATOR_ID, dtype=np.int64),
        occluded=occluded,
        truncated=truncated,
    )
    return Dataset(annotations, images, config.taxonomy())


def _clip(bbox: FloatArray, width: FloatArray, height: FloatArray) -> FloatArray:
    """Clip (n, 4) xyxy boxes into their ``[0, width] x [0, height]`` images."""
    limit = np.stack([width, height, width, height], axis=1)
    return np.clip(bbox, 0.0, limit)


# --- noisy copies ---------------------------------------------------------------------------


def default_confusable(taxonomy: Taxonomy) -> dict[int, int]:
    """Give every class a fixed confusion partner, derived from the taxonomy alone.

    Within each supercategory, classes are paired in taxonomy order (1st with 2nd, 3rd
    with 4th, ...); the odd one out maps to the class before it. A class alone in its
    supercategory (or without one) maps to the next class of the taxonomy, the last one
    to the previous; a taxonomy of one class maps it to itself (it is never swapped).

    Parameters
    ----------
    taxonomy
        The classes to pair.

    Returns
    -------
    dict[int, int]
        Class id -> partner class id.

    Examples
    --------
    >>> c = default_confusable(SceneConfig().taxonomy())
    >>> names = SceneConfig().taxonomy().names
    >>> [(names[k - 1], names[v - 1]) for k, v in c.items()][:3]
    [('car', 'truck'), ('person', 'stroller'), ('traffic sign', 'traffic light')]
    """
    ids = [c.id for c in taxonomy.classes]
    groups: dict[str, list[int]] = {}
    for c in taxonomy.classes:
        if c.supercategory:
            groups.setdefault(c.supercategory, []).append(c.id)
    partner: dict[int, int] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in range(0, len(members) - 1, 2):
            partner[members[i]], partner[members[i + 1]] = members[i + 1], members[i]
        if len(members) % 2:
            partner[members[-1]] = members[-2]
    for pos, class_id in enumerate(ids):
        if class_id not in partner:
            partner[class_id] = ids[pos + 1] if pos + 1 < len(ids) else ids[max(pos - 1, 0)]
    return {class_id: partner[class_id] for class_id in ids}


@dataclass(frozen=True, slots=True)
class NoiseModel:
    """How a second annotator or a model departs from the reference.

    The defaults describe a careful human annotator: ~2-27 % misses depending on size,
    4 % jitter, no bias, 2 % class swaps, 0.5 % duplicates, 0.1 false positives per image.

    Parameters
    ----------
    miss_base
        Miss probability of a large object; default 0.02.
    miss_small_extra
        Extra miss probability of a tiny object; default 0.25. An object of side
        ``sqrt(area)`` is missed with ``miss_base + miss_small_extra * exp(-sqrt(area) /
        miss_size_scale_px)``.
    miss_size_scale_px
        Side (pixels) over which the extra miss probability falls by ``e``; default 24.0.
    jitter
        Standard deviation of each box edge, in units of the reference box's width (x) or
        height (y); default 0.04.
    bias
        Log scale applied to width and height before jitter: > 0 loose (boxes too large),
        < 0 tight; default 0.0.
    swap_probability
        Probability a kept object gets its confusable partner's class; default 0.02.
    confusable
        Class id -> partner class id; ``None`` (default) takes :func:`default_confusable`.
        Classes absent from the map are never swapped.
    duplicate_probability
        Probability a kept object is labelled twice; default 0.005.
    duplicate_jitter
        Jitter of the second copy relative to the first (box units); default 0.1.
    false_positives_per_image
        Poisson mean of extra boxes on background per image; default 0.1.
    score_true
        Beta ``(a, b)`` of a correctly classified object's score, which is then multiplied
        by the IoU of its box with the reference, so badly placed boxes score lower;
        default (8.0, 2.0).
    score_swapped
        Beta ``(a, b)`` of a class-swapped object's score (times its IoU); default (3.0, 3.0).
    score_false
        Beta ``(a, b)`` of false positives and duplicates; default (2.0, 6.0).

    Examples
    --------
    >>> NoiseModel(bias=0.1).bias
    0.1
    """

    miss_base: float = 0.02
    miss_small_extra: float = 0.25
    miss_size_scale_px: float = 24.0
    jitter: float = 0.04
    bias: float = 0.0
    swap_probability: float = 0.02
    confusable: Mapping[int, int] | None = field(default=None, hash=False)
    duplicate_probability: float = 0.005
    duplicate_jitter: float = 0.1
    false_positives_per_image: float = 0.1
    score_true: tuple[float, float] = (8.0, 2.0)
    score_swapped: tuple[float, float] = (3.0, 3.0)
    score_false: tuple[float, float] = (2.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("miss_base", "miss_small_extra", "swap_probability", "duplicate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"expected a probability in [0, 1], got {value}", field=name)
        for name in (
            "miss_size_scale_px",
            "jitter",
            "duplicate_jitter",
            "false_positives_per_image",
        ):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValidationError(f"expected a value >= 0, got {value}", field=name)
        for name in ("score_true", "score_swapped", "score_false"):
            a, b = getattr(self, name)
            if not (a > 0 and b > 0):
                raise ValidationError(f"expected Beta parameters > 0, got {(a, b)}", field=name)


@dataclass(frozen=True, slots=True, eq=False)
class Perturbation:
    """A perturbed label set and what was done to every reference object.

    Attributes
    ----------
    annotations : Annotations
        The perturbed labels, (m,) rows sorted by image, consecutive ids.
    matched_ref : (m,) int64
        For each output row, the reference row it derives from; -1 for false positives.
    missed : (n,) bool
        For each reference row, whether the annotator left it out.
    swapped : (m,) bool
        For each output row, whether its class was swapped into the confusable partner.
    duplicate : (m,) bool
        For each output row, whether it is the second copy of a labelled object.
    """

    annotations: Annotations
    matched_ref: IntArray
    missed: BoolArray
    swapped: BoolArray
    duplicate: BoolArray

    @property
    def false_positive(self) -> BoolArray:
        """(m,) True for boxes with no reference object."""
        return self.matched_ref < 0


def _pairwise_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise IoU of two (n, 4) xyxy arrays -> (n,); 0.0 for an empty union."""
    inter_w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    inter_h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0, None)
    inter = inter_w * inter_h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = union - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def _jitter(
    rng: np.random.Generator, bbox: FloatArray, *, bias: float, jitter: float
) -> FloatArray:
    """Scale boxes about their centre by ``exp(bias)``, then move each edge by gaussian noise."""
    w = bbox[:, 2] - bbox[:, 0]
    h = bbox[:, 3] - bbox[:, 1]
    cx, cy = (bbox[:, 0] + bbox[:, 2]) / 2, (bbox[:, 1] + bbox[:, 3]) / 2
    scale = np.exp(bias)
    unit = np.stack([w, h, w, h], axis=1)
    noise = jitter * unit * rng.standard_normal((len(bbox), 4))
    half_w, half_h = w * scale / 2, h * scale / 2
    out = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1) + noise
    # large noise can cross the edges over; sorting keeps x1 <= x2 without biasing either
    xs, ys = np.sort(out[:, 0::2], axis=1), np.sort(out[:, 1::2], axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


def _beta(rng: np.random.Generator, params: tuple[float, float], n: int) -> FloatArray:
    return rng.beta(params[0], params[1], size=n)


def perturb(
    dataset: Dataset,
    noise: NoiseModel,
    *,
    seed: Seed = 0,
    annotator_id: int = 1,
    as_predictions: bool = False,
    first_id: int = 1,
) -> Perturbation:
    """Derive a second annotator's or a model's boxes from the reference, with known noise.

    In order: each reference object is missed with a size-dependent probability; each kept
    one is scaled by ``exp(noise.bias)`` and jittered, clipped to its image, and its class
    swapped into its confusable partner with ``noise.swap_probability``; a few kept objects
    get a near-copy (duplicate); Poisson false positives are placed on each image, with
    classes and relative sizes drawn from the reference objects. Output rows are sorted
    by image (stable: kept objects, then duplicates, then false positives).

    Parameters
    ----------
    dataset
        The reference: boxes, their images (sizes clip the boxes; images of unknown size
        are not clipped and get no false positives) and taxonomy.
    noise
        The noise model.
    seed
        Seed of the random stream. Default 0.
    annotator_id
        Written to every output row (the model's id for predictions). Default 1.
    as_predictions
        False (default): human labels, score NaN, source HUMAN. True: model pre-labels,
        source PRELABEL, scores from the noise model's Beta distributions.
    first_id
        Id of the first output row; rows get ``first_id..first_id + m - 1``. Default 1.

    Returns
    -------
    Perturbation
        The labels and, per row, the reference row they derive from and what was done.

    Raises
    ------
    ValidationError
        If a reference row has no box (a tag).

    Examples
    --------
    >>> ref = generate_dataset(50, seed=3)
    >>> p = perturb(ref, NoiseModel(swap_probability=0.5), seed=4, as_predictions=True)
    >>> n_kept = int((~p.missed).sum())
    >>> int((~p.duplicate & ~p.false_positive).sum()) == n_kept
    True
    >>> bool(p.swapped.any()), bool(np.isnan(p.annotations.score).any())
    (True, False)
    """
    ref = dataset.annotations
    tags = np.flatnonzero(ref.kind == Kind.TAG)
    if len(tags):
        raise ValidationError("expected boxes, got a tag", field="kind", row=int(tags[0]))
    rng = np.random.default_rng(seed)
    images = dataset.images
    image_row = images.index_of(ref.image_id)
    known_w = np.where(images.width > 0, images.width, np.inf).astype(np.float64)
    known_h = np.where(images.height > 0, images.height, np.inf).astype(np.float64)
    ref_w = ref.bbox[:, 2] - ref.bbox[:, 0]
    ref_h = ref.bbox[:, 3] - ref.bbox[:, 1]

    # misses: small objects are overlooked more often
    side = np.sqrt(ref_w * ref_h)
    scale = max(noise.miss_size_scale_px, 1e-12)
    p_miss = np.clip(noise.miss_base + noise.miss_small_extra * np.exp(-side / scale), 0.0, 1.0)
    missed = rng.random(len(ref)) < p_miss
    kept = np.flatnonzero(~missed)
    k = len(kept)

    # kept objects: bias, jitter, clip, class swap
    kept_w = known_w[image_row[kept]] if len(images) else np.full(k, np.inf)
    kept_h = known_h[image_row[kept]] if len(images) else np.full(k, np.inf)
    box = _clip(_jitter(rng, ref.bbox[kept], bias=noise.bias, jitter=noise.jitter), kept_w, kept_h)
    confusable = (
        default_confusable(dataset.taxonomy) if noise.confusable is None else noise.confusable
    )
    ids = dataset.taxonomy.ids
    partner_of = np.array([confusable.get(int(c), int(c)) for c in ids] + [0], dtype=np.int64)
    class_id = ref.class_id[kept]
    partner = partner_of[dataset.taxonomy.position(class_id)]
    swapped = (rng.random(k) < noise.swap_probability) & (partner != class_id)
    class_id = np.where(swapped, partner, class_id)

    # duplicates: a second, slightly moved copy of a kept object
    dup = np.flatnonzero(rng.random(k) < noise.duplicate_probability)
    dup_box = _clip(
        _jitter(rng, box[dup], bias=0.0, jitter=noise.duplicate_jitter), kept_w[dup], kept_h[dup]
    )

    # false positives: boxes on background, shaped like the reference objects
    sized = np.flatnonzero(images.has_size)
    fp_counts = rng.poisson(noise.false_positives_per_image, size=len(sized))
    fp_image = np.repeat(sized, fp_counts)
    n_fp = len(fp_image)
    fp_w_img = images.width[fp_image].astype(np.float64)
    fp_h_img = images.height[fp_image].astype(np.float64)
    if len(ref) and image_row.min() >= 0 and images.has_size[image_row].all():
        source = rng.integers(0, len(ref), size=n_fp)
        ref_diag = np.hypot(known_w[image_row[source]], known_h[image_row[source]])
        relative_w, relative_h = ref_w[source] / ref_diag, ref_h[source] / ref_diag
        fp_class = ref.class_id[source]
    else:  # no shapes to copy: squares of 5 % of the diagonal, uniform classes
        relative_w = relative_h = np.full(n_fp, 0.05)
        fp_class = ids[rng.integers(0, max(len(ids), 1), size=n_fp)] if len(ids) else ids[:0]
    fp_diag = np.hypot(fp_w_img, fp_h_img)
    fp_bw, fp_bh = relative_w * fp_diag, relative_h * fp_diag
    fp_cx = rng.random(n_fp) * fp_w_img
    fp_cy = rng.random(n_fp) * fp_h_img
    fp_raw = np.stack(
        [fp_cx - fp_bw / 2, fp_cy - fp_bh / 2, fp_cx + fp_bw / 2, fp_cy + fp_bh / 2], axis=1
    )
    fp_box = _clip(fp_raw.reshape(-1, 4), fp_w_img, fp_h_img)

    # scores: well-placed, correctly classified boxes score high
    if as_predictions:
        iou = _pairwise_iou(ref.bbox[kept], box)
        kept_score = np.where(
            swapped, _beta(rng, noise.score_swapped, k), _beta(rng, noise.score_true, k)
        )
        score = np.concatenate([kept_score * iou, _beta(rng, noise.score_false, len(dup) + n_fp)])
    else:
        score = np.full(k + len(dup) + n_fp, np.nan)

    matched_ref = np.concatenate([kept, kept[dup], np.full(n_fp, -1, dtype=np.int64)])
    out_image = np.concatenate(
        [ref.image_id[kept], ref.image_id[kept[dup]], images.id[fp_image]]
    ).astype(np.int64)
    order = np.argsort(out_image, kind="stable")
    m = len(order)
    matched_ref = matched_ref[order]
    from_ref = np.maximum(matched_ref, 0)
    is_fp = matched_ref < 0
    annotations = Annotations.create(
        id=np.arange(first_id, first_id + m, dtype=np.int64),
        image_id=out_image[order],
        class_id=np.concatenate([class_id, class_id[dup], fp_class]).astype(np.int64)[order],
        bbox=np.concatenate([box, dup_box, fp_box])[order],
        score=score[order],
        annotator_id=np.full(m, annotator_id, dtype=np.int64),
        source=np.full(m, Source.PRELABEL if as_predictions else Source.HUMAN, dtype=np.uint8),
        occluded=np.where(is_fp, False, ref.occluded[from_ref] if len(ref) else False),
        truncated=np.where(
            is_fp,
            np.concatenate([np.zeros(k + len(dup), bool), (fp_box != fp_raw).any(axis=1)])[order],
            ref.truncated[from_ref] if len(ref) else False,
        ),
    )
    return Perturbation(
        annotations=annotations,
        matched_ref=matched_ref,
        missed=missed,
        swapped=np.concatenate([swapped, swapped[dup], np.zeros(n_fp, bool)])[order],
        duplicate=np.concatenate(
            [np.zeros(k, bool), np.ones(len(dup), bool), np.zeros(n_fp, bool)]
        )[order],
    )


def generate_pool(
    dataset: Dataset, annotators: Sequence[NoiseModel], *, seed: Seed = 0
) -> Annotations:
    """Label the reference once per annotator: the seed of an annotator-pool simulation.

    Parameters
    ----------
    dataset
        The reference data set.
    annotators
        One noise model per annotator; annotator ``j`` (0-based) gets ``annotator_id``
        ``j + 1``.
    seed
        Seed; each annotator draws from its own child stream
        (``np.random.SeedSequence(seed).spawn``), so adding an annotator leaves the
        others' labels unchanged. Default 0.

    Returns
    -------
    Annotations
        Every annotator's human labels (score NaN, source HUMAN), annotator by annotator,
        ids ``1..m``.

    Examples
    --------
    >>> ref = generate_dataset(20, seed=0)
    >>> pool = generate_pool(ref, [NoiseModel(), NoiseModel(bias=0.2)], seed=1)
    >>> np.unique(pool.annotator_id).tolist()
    [1, 2]
    """
    base = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # what ``base.spawn`` would give, without advancing a caller's SeedSequence
    parts: list[Annotations] = []
    next_id = 1
    for j, noise in enumerate(annotators):  # one vectorized call per annotator
        child = np.random.SeedSequence(base.entropy, spawn_key=(*base.spawn_key, j))
        part = perturb(dataset, noise, seed=child, annotator_id=j + 1, first_id=next_id)
        parts.append(part.annotations)
        next_id += len(part.annotations)
    return Annotations.concat(parts)
