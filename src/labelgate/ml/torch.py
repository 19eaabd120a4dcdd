"""torchvision detection models from a local weights file, as a :class:`Predictor`.

:class:`TorchvisionPredictor` builds one of torchvision's detection architectures
(``torchvision.models.detection``: Faster R-CNN, RetinaNet, FCOS, SSD, SSDlite, Mask
R-CNN) with ``weights=None, weights_backbone=None``, so nothing is downloaded, and loads a
``state_dict`` saved with ``torch.save(model.state_dict(), path)``. Images go to the model
as torchvision expects them (RGB float tensors in [0, 1], one per image); the model
resizes and normalises them itself and returns boxes in each image's own pixels.

torch and torchvision are optional and heavy: the ``[torch]`` extra
(``pip install torch==2.14.1 torchvision==0.29.1``, or ``pip install labelgate[torch]``);
they are imported when a predictor is built, never at ``import labelgate``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core.annotations import Annotations, Kind
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.errors import FormatError, ValidationError
from labelgate.ml.onnx import masks_to_rle
from labelgate.ml.predictors import Pixels, postprocess

__all__ = ["TORCHVISION_DETECTORS", "TorchvisionPredictor"]

#: Builders of ``torchvision.models.detection`` this adapter accepts (boxes; masks for
#: Mask R-CNN).
TORCHVISION_DETECTORS = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
)


def _import(name: str) -> Any:
    """Import torch / torchvision on first use, or say how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{name} is not installed: pip install 'labelgate[torch]' "
            "(torch==2.14.1 torchvision==0.29.1)"
        ) from exc


class TorchvisionPredictor:
    """A torchvision detection model with weights from a local ``state_dict`` file.

    Parameters
    ----------
    weights
        The file ``torch.save(model.state_dict(), path)`` wrote (loaded with
        ``weights_only=True``: tensors only, no pickled code).
    model
        A builder name from :data:`TORCHVISION_DETECTORS`; default
        ``"fasterrcnn_resnet50_fpn"``.
    num_classes
        Classes of the trained head, background included for the R-CNN family (as
        passed to the builder when training); default 91 (COCO).
    model_kwargs
        More builder keywords (``min_size``, ``max_size``, ``box_score_thresh``,
        ``box_detections_per_img``...), as when the model was trained and saved.
    class_map, thresholds
        Model label -> taxonomy id and per-class minimum scores, as in
        :func:`~labelgate.ml.predictors.postprocess`.
    batch_size
        Images per forward pass; default 4.
    device
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``...
    mask_threshold
        Mask R-CNN: mask probability above which a pixel belongs to the object; default
        0.5 (torchvision's own reference).
    threads
        ``torch.set_num_threads`` for CPU inference; None (default): torch's choice.

    Notes
    -----
    Inference runs under ``torch.inference_mode()`` in ``eval()`` mode. The model's own
    transform resizes (``min_size`` / ``max_size``) and normalises each image, and maps
    boxes and masks back to the image's pixels, so the predictor passes RGB ``[0, 1]``
    tensors of the original size.
    """

    def __init__(
        self,
        weights: Path | str,
        *,
        model: str = "fasterrcnn_resnet50_fpn",
        num_classes: int = 91,
        model_kwargs: Mapping[str, Any] | None = None,
        class_map: Mapping[int, int] | None = None,
        thresholds: Mapping[int, float] | float | None = None,
        batch_size: int = 4,
        device: str = "cpu",
        mask_threshold: float = 0.5,
        threads: int | None = None,
    ) -> None:
        self.path = Path(weights)
        if model not in TORCHVISION_DETECTORS:
            raise ValidationError(
                f"expected one of {', '.join(TORCHVISION_DETECTORS)}, got {model!r}",
                field="model",
            )
        if batch_size < 1:
            raise ValidationError(f"expected >= 1, got {batch_size}", field="batch_size")
        if not self.path.is_file():
            raise FormatError("no such weights file", path=self.path)
        torch = _import("torch")
        detection = _import("torchvision.models.detection")
        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        self.model = getattr(detection, model)(
            weights=None, weights_backbone=None, num_classes=num_classes, **dict(model_kwargs or {})
        )
        try:
            state = torch.load(self.path, map_location=self.device, weights_only=True)
        except Exception as exc:  # torch's unpickler raises several unrelated types
            raise FormatError(f"cannot load a state_dict: {exc}", path=self.path) from exc
        if not isinstance(state, Mapping):
            raise FormatError(
                f"expected a state_dict (a mapping of tensors), got {type(state).__name__}",
                path=self.path,
            )
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing / unexpected keys, shape mismatches
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise FormatError(
                f"does not fit {model}(num_classes={num_classes}): {detail}", path=self.path
            ) from exc
        self.model.eval().to(self.device)
        self.model_name = model
        self.class_map = class_map
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.mask_threshold = mask_threshold

    def tensors(self, pixels: Sequence[Pixels]) -> list[Any]:
        """Pixels -> the ``(3, h, w)`` float RGB tensors in [0, 1] the model takes."""
        torch = self._torch
        out = []
        for array in pixels:
            rgb = np.asarray(array)
            if rgb.ndim == 2:
                rgb = np.repeat(rgb[:, :, None], 3, axis=2)
            elif rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
                raise ValidationError(
                    f"expected (h, w), (h, w, 3) or (h, w, 4) pixels, got shape {rgb.shape}",
                    field="pixels",
                )
            chw = np.ascontiguousarray(rgb[:, :, :3].transpose(2, 0, 1), dtype=np.float32)
            if rgb.dtype == np.uint8:
                chw /= 255.0
            out.append(torch.from_numpy(chw).to(self.device))
        return out

    def _read(self, images: Images, root: Path | None) -> list[Pixels]:
        from PIL import Image  # a core dependency; decodes what torchvision users save

        out = []
        for name in images.file_name.tolist():
            path = (root or Path(".")) / str(name)
            try:
                with Image.open(path) as image:
                    out.append(np.asarray(image.convert("RGB")))
            except OSError as exc:
                raise FormatError(f"cannot decode the image: {exc}", path=path) from exc
        return out

    def predict(
        self, images: Images, pixels: Sequence[Pixels] | None = None, *, root: Path | None = None
    ) -> Annotations:
        """Detect on every image, ``batch_size`` images per forward pass.

        ``pixels``: one ``(h, w)``, ``(h, w, 3)`` RGB or ``(h, w, 4)`` array per row of
        ``images`` (uint8, or floats in [0, 1]); without it, ``root / file_name`` is read.
        """
        if pixels is not None and len(pixels) != len(images):
            raise ValidationError(
                f"expected one pixel array per image ({len(images)}), got {len(pixels)}",
                field="pixels",
            )
        torch = self._torch
        parts: list[Annotations] = []
        count = 0
        for lo in range(0, len(images), self.batch_size):
            batch = images[lo : lo + self.batch_size]
            arrays = (
                list(pixels[lo : lo + self.batch_size])
                if pixels is not None
                else self._read(batch, root)
            )
            with torch.inference_mode():
                results = self.model(self.tensors(arrays))
            part = self._annotations(batch.id, results, [a.shape[:2] for a in arrays])
            parts.append(part.replace(id=np.arange(count + 1, count + 1 + len(part))))
            count += len(part)
        if not parts:
            return postprocess(Annotations.empty())
        return postprocess(Annotations.concat(parts), class_map=self.class_map,
                           thresholds=self.thresholds)  # fmt: skip

    def _annotations(
        self, image_ids: Any, results: list[dict[str, Any]], sizes: list[tuple[int, ...]]
    ) -> Annotations:
        """The per-image dicts torchvision returns -> one container (masks as RLE)."""
        lengths = np.array([len(r["scores"]) for r in results], dtype=np.int64)
        owner = np.repeat(np.arange(len(results)), lengths)
        bbox = np.concatenate([r["boxes"].detach().cpu().numpy().reshape(-1, 4) for r in results])
        score = np.concatenate([r["scores"].detach().cpu().numpy() for r in results])
        label = np.concatenate([r["labels"].detach().cpu().numpy() for r in results])
        ids = np.asarray(image_ids)[owner]
        if not results or "masks" not in results[0]:
            return Annotations.create(image_id=ids, class_id=label.astype(np.int64),
                                      bbox=bbox.astype(np.float64), score=score)  # fmt: skip
        values, runs = [], []
        for r in results:
            masks = r["masks"].detach().cpu().numpy()  # (n, 1, h, w) probabilities
            rle = masks_to_rle(masks[:, 0] > self.mask_threshold)
            values.append(rle.values)
            runs.append(rle.lengths)
        offsets = np.zeros(len(owner) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(runs), out=offsets[1:])
        heights_widths = np.array([s[:2] for s in sizes], dtype=np.int64).reshape(-1, 2)
        return Annotations.create(
            image_id=ids,
            class_id=label.astype(np.int64),
            bbox=bbox.astype(np.float64),
            score=score,
            kind=np.full(len(owner), Kind.MASK, dtype=np.uint8),
            rle_counts=Ragged(np.concatenate(values).astype(np.int64), offsets),
            rle_size=heights_widths[owner],
        )
