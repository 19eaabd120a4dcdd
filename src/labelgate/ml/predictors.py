"""Predictors: anything that turns images into scored :class:`Annotations` (pre-labels).

A :class:`Predictor` takes an :class:`~labelgate.core.images.Images` table and, optionally,
the decoded pixels of each image (else it reads ``root / file_name``), and returns one
container of scored predictions, ``source=PRELABEL``, for the whole batch. Two adapters:

- :class:`PredictionsFile`: a COCO results JSON written by a model that ran elsewhere,
  read once through :func:`labelgate.formats.coco.read_coco`;
- :class:`CascadePredictor`: OpenCV's boosted cascades (Viola-Jones), whose trained files
  ship inside opencv-python-headless 4.x (``cv2.data.haarcascades``: frontal face, full
  body, licence plates...). Nothing is downloaded.

Both map classes (``class_map``) and drop predictions below a per-class confidence
threshold (``thresholds``), vectorized over the batch by :func:`postprocess`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Annotations, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.errors import FormatError, ValidationError
from labelgate.formats.coco import read_coco

__all__ = [
    "CascadePredictor",
    "PredictionsFile",
    "Predictor",
    "draw_face",
    "postprocess",
]

Pixels = NDArray[Any]


@runtime_checkable
class Predictor(Protocol):
    """Images in, scored predictions out.

    ``predict(images, pixels=None, *, root=None)``: ``images`` names the batch (ids, file
    names, sizes); ``pixels``, when given, holds one decoded ``(h, w)`` or ``(h, w, 3)``
    RGB array per row of ``images``; otherwise the predictor reads ``root / file_name``
    itself, or needs no pixels at all (a predictions file). Returns every prediction of
    the batch in one container: ``score`` set, ``source`` :attr:`Source.PRELABEL`.
    """

    def predict(
        self, images: Images, pixels: Sequence[Pixels] | None = None, *, root: Path | None = None
    ) -> Annotations:
        """Predict on a batch of images."""
        ...


def postprocess(
    predictions: Annotations,
    *,
    class_map: Mapping[int, int] | None = None,
    thresholds: Mapping[int, float] | float | None = None,
    first_id: int = 1,
    annotator_id: int = -1,
) -> Annotations:
    """Map classes, drop low-confidence rows, mark as pre-labels: vectorized over the batch.

    Parameters
    ----------
    predictions
        Scored predictions.
    class_map
        Model class id -> taxonomy class id; classes absent from a given map are dropped.
        None (default): ids kept.
    thresholds
        Minimum score, one for all classes or per (mapped) class id; classes absent from
        a mapping keep every row. Default None: keep every row.
    first_id
        Ids of the output rows are ``first_id..``; default 1.
    annotator_id
        Written to every row (the model's id); default -1.

    Examples
    --------
    >>> pred = Annotations.create(image_id=[1, 1, 2], class_id=[0, 1, 0],
    ...                           score=[0.9, 0.8, 0.2], bbox=[[0, 0, 1, 1]] * 3)
    >>> out = postprocess(pred, class_map={0: 7}, thresholds={7: 0.5})
    >>> out.class_id.tolist(), out.score.tolist(), int(out.source[0])
    ([7], [0.9], 1)
    """
    class_id = predictions.class_id
    keep = np.ones(len(predictions), dtype=bool)
    if class_map is not None:
        keys = np.array(sorted(class_map), dtype=np.int64)
        values = np.array([class_map[k] for k in keys.tolist()], dtype=np.int64)
        pos = np.clip(np.searchsorted(keys, class_id), 0, max(len(keys) - 1, 0))
        known = (keys[pos] == class_id) if len(keys) else np.zeros(len(class_id), bool)
        keep &= known
        class_id = np.where(known, values[pos] if len(keys) else class_id, class_id)
    score = np.nan_to_num(predictions.score, nan=0.0)
    if thresholds is not None:
        if isinstance(thresholds, Mapping):
            keys = np.array(sorted(thresholds), dtype=np.int64)
            values_t = np.array([thresholds[k] for k in keys.tolist()], dtype=np.float64)
            pos = np.clip(np.searchsorted(keys, class_id), 0, max(len(keys) - 1, 0))
            found = (keys[pos] == class_id) if len(keys) else np.zeros(len(class_id), bool)
            limit = np.where(found, values_t[pos] if len(keys) else 0.0, -np.inf)
        else:
            limit = np.full(len(class_id), float(thresholds))
        keep &= score >= limit
    rows = np.flatnonzero(keep)
    out = predictions.take(rows)
    m = len(rows)
    return out.replace(
        id=np.arange(first_id, first_id + m, dtype=np.int64),
        class_id=class_id[rows],
        score=score[rows],
        source=np.full(m, Source.PRELABEL, dtype=np.uint8),
        annotator_id=np.full(m, annotator_id, dtype=np.int64),
    )


class PredictionsFile:
    """Predictions a model wrote elsewhere, as a COCO results JSON list.

    The file is read once (:func:`~labelgate.formats.coco.read_coco`); :meth:`predict`
    returns the rows of the requested images.

    Parameters
    ----------
    path
        The results file: ``[{"image_id", "category_id", "bbox" | "segmentation" |
        "keypoints", "score"}, ...]``.
    reference
        The data set the results refer to (its images and taxonomy); results on unknown
        images or classes are then an error naming the record. Default None.
    class_map, thresholds
        As in :func:`postprocess`.

    Examples
    --------
    >>> import json, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "results.json"
    >>> _ = path.write_text(json.dumps([
    ...     {"image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4], "score": 0.9},
    ...     {"image_id": 2, "category_id": 3, "bbox": [1, 1, 4, 4], "score": 0.3}]))
    >>> out = PredictionsFile(path, thresholds=0.5).predict(Images.create(id=[1, 2]))
    >>> out.image_id.tolist(), out.bbox.tolist()
    ([1], [[0.0, 0.0, 4.0, 4.0]])
    """

    def __init__(
        self,
        path: Path | str,
        *,
        reference: Dataset | None = None,
        class_map: Mapping[int, int] | None = None,
        thresholds: Mapping[int, float] | float | None = None,
    ) -> None:
        self.path = Path(path)
        dataset = read_coco(self.path, reference=reference)
        if len(dataset.annotations) and np.isnan(dataset.annotations.score).any():
            row = int(np.flatnonzero(np.isnan(dataset.annotations.score))[0])
            raise FormatError("expected a score on every result", path=self.path,
                              record=f"[{row}]", field="score")  # fmt: skip
        self.predictions = postprocess(
            dataset.annotations, class_map=class_map, thresholds=thresholds
        )

    def predict(
        self, images: Images, pixels: Sequence[Pixels] | None = None, *, root: Path | None = None
    ) -> Annotations:
        """The file's predictions on ``images`` (pixels and root are not needed)."""
        del pixels, root  # the model already ran
        return self.predictions[np.isin(self.predictions.image_id, images.id)]


class CascadePredictor:
    """OpenCV cascade detectors (Viola-Jones): one per class, trained files from the wheel.

    Parameters
    ----------
    cascades
        Class id -> cascade file: a name inside ``cv2.data.haarcascades`` (e.g.
        ``"haarcascade_frontalface_default.xml"``) or a path.
    thresholds
        Minimum score, one or per class id; default None (keep all).
    scale_factor, min_neighbors, min_size
        ``detectMultiScale`` settings; defaults 1.1, 4 and (24, 24) pixels.
    batch_size
        Images decoded and detected per batch; default 32 (bounds memory).

    Notes
    -----
    OpenCV's cascades return boxes, not probabilities. The score is the logistic of the
    detection's level weight (``detectMultiScale3(..., outputRejectLevels=True)``): a
    monotone confidence in [0, 1] to threshold and rank by, not a calibrated probability.
    Detection is one compiled call per image and cascade (OpenCV threads it internally,
    ``cv2.setNumThreads``); mapping, thresholds and box conversion run once per batch.

    The predictor pickles (to Ray workers, :func:`~labelgate.ml.distributed.prelabel_sharded`,
    or to other processes): its settings and the cascade names travel, and the native
    classifiers are loaded again where it is unpickled (a bare name from that machine's
    ``cv2.data.haarcascades``).

    Examples
    --------
    >>> predictor = CascadePredictor({1: "haarcascade_frontalface_default.xml"})
    >>> out = predictor.predict(Images.create(id=[7]), [draw_face(256)])
    >>> out.image_id.tolist(), out.class_id.tolist(), int(out.source[0])
    ([7], [1], 1)
    """

    def __init__(
        self,
        cascades: Mapping[int, str | Path],
        *,
        thresholds: Mapping[int, float] | float | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        min_size: tuple[int, int] = (24, 24),
        batch_size: int = 32,
    ) -> None:
        if not cascades:
            raise ValidationError("expected at least one cascade", field="cascades")
        self.class_ids = np.array(sorted(cascades), dtype=np.int64)
        #: class id -> cascade file as given (a name or a path): what a pickle carries
        self.cascades = {int(k): str(cascades[k]) for k in self.class_ids.tolist()}
        self.thresholds = thresholds
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.batch_size = batch_size
        self._load()

    def _load(self) -> None:
        """Load the native classifiers (here, or again after unpickling)."""
        import cv2  # optional: the [ml] extra

        self._cv2 = cv2
        self.classifiers = []
        for class_id in self.class_ids.tolist():
            name = Path(self.cascades[class_id])
            # cv2's bundled stubs omit cv2.data, which the wheel ships with the cascades
            folder = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
            path = name if name.is_file() else folder / name
            classifier = cv2.CascadeClassifier(str(path))
            if classifier.empty():
                raise FormatError("not an OpenCV cascade (or missing)", path=path)
            self.classifiers.append(classifier)

    def __getstate__(self) -> dict[str, Any]:
        """The settings and cascade names; not the module or the native classifiers."""
        state = dict(self.__dict__)
        del state["_cv2"], state["classifiers"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    def _gray(self, pixels: Pixels) -> Pixels:
        cv2 = self._cv2
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            return cv2.cvtColor(pixels, cv2.COLOR_RGBA2GRAY)  # type: ignore[no-any-return]
        if pixels.ndim == 3:
            return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)  # type: ignore[no-any-return]
        return pixels

    def _read(self, images: Images, root: Path | None) -> list[Pixels]:
        out = []
        for name in images.file_name.tolist():
            path = (root or Path(".")) / str(name)
            data = self._cv2.imread(str(path), self._cv2.IMREAD_GRAYSCALE)
            if data is None:
                raise FormatError("cannot decode the image", path=path)
            out.append(data)
        return out

    def predict(
        self, images: Images, pixels: Sequence[Pixels] | None = None, *, root: Path | None = None
    ) -> Annotations:
        """Detect every cascade's class on every image; see the class docstring."""
        if pixels is not None and len(pixels) != len(images):
            raise ValidationError(
                f"expected one pixel array per image ({len(images)}), got {len(pixels)}",
                field="pixels",
            )
        boxes: list[IntArray] = []
        weights: list[FloatArray] = []
        owner: list[IntArray] = []
        classes: list[IntArray] = []
        for lo in range(0, len(images), self.batch_size):
            batch = images[lo : lo + self.batch_size]
            arrays = (
                [self._gray(p) for p in pixels[lo : lo + self.batch_size]]
                if pixels is not None
                else self._read(batch, root)
            )
            for i, gray in enumerate(arrays):  # one compiled call per image and cascade
                for class_id, classifier in zip(self.class_ids.tolist(), self.classifiers):
                    found, _, level = classifier.detectMultiScale3(
                        gray,
                        scaleFactor=self.scale_factor,
                        minNeighbors=self.min_neighbors,
                        minSize=self.min_size,
                        outputRejectLevels=True,
                    )
                    k = len(found)
                    if k:
                        boxes.append(np.asarray(found, dtype=np.int64).reshape(k, 4))
                        weights.append(np.asarray(level, dtype=np.float64).reshape(k))
                        owner.append(np.full(k, lo + i, dtype=np.int64))
                        classes.append(np.full(k, class_id, dtype=np.int64))
        if not boxes:
            return Annotations.empty()
        xywh = np.concatenate(boxes).astype(np.float64)
        bbox = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        score = 1.0 / (1.0 + np.exp(-np.concatenate(weights)))
        raw = Annotations.create(
            image_id=images.id[np.concatenate(owner)],
            class_id=np.concatenate(classes),
            bbox=bbox,
            score=score,
        )
        return postprocess(raw, thresholds=self.thresholds)


def draw_face(size: int = 256) -> Pixels:
    """A drawn frontal face on a plain background, (size, size, 3) uint8 RGB.

    A pale oval with two dark eyes under dark brows, a nose shadow and a mouth: enough
    for OpenCV's frontal-face cascade, for tests and benchmarks without sample photos.

    Examples
    --------
    >>> draw_face(128).shape
    (128, 128, 3)
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    image = np.full((size, size), 60.0)
    face = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2 <= 1
    image[face] = 200.0
    for cx in (0.38, 0.62):
        eye = ((xx - cx) / 0.06) ** 2 + ((yy - 0.42) / 0.035) ** 2 <= 1
        image[eye] = 30.0
        brow = (np.abs(xx - cx) < 0.08) & (np.abs(yy - 0.34) < 0.015)
        image[brow] = 50.0
    nose = (np.abs(xx - 0.5) < 0.03) & (yy > 0.45) & (yy < 0.6)
    image[nose] = 150.0
    mouth = ((xx - 0.5) / 0.12) ** 2 + ((yy - 0.7) / 0.03) ** 2 <= 1
    image[mouth] = 70.0
    gray = image.astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
