"""ONNX Runtime predictor: any detector or segmenter exported to ONNX, configured, not coded.

:class:`OnnxPredictor` runs a model file through ONNX Runtime with configurable
pre-processing (:class:`Preprocess`: input size, letterbox / stretch / no resize, channel
order, scaling, mean / std normalisation, NCHW / NHWC / CHW layout) and one of two output
decoders:

- :class:`BoxesOutput`: the model already decoded and suppressed its detections
  (torchvision's exports, TensorFlow's object-detection API, YOLO exports with NMS
  inside): a boxes tensor, a scores tensor, optionally labels, a per-image count and
  instance masks ``(N, 1, H, W)`` (Mask R-CNN) that become COCO RLE masks;
- :class:`YoloOutput`: a raw YOLO-style head ``[B, 4 + C, N]`` (YOLOv8 and later) or
  ``[B, N, 4 (+1) + C]`` (YOLOv5, with objectness): best class per candidate, a score
  threshold, then class-wise greedy non-maximum suppression (:func:`nms`).

Boxes (and masks) are mapped back from the model's input frame to each original image
(the letterbox padding and scale undone) and clipped to it. Models whose batch dimension
is dynamic run ``batch_size`` images per call. Shapes that do not fit the configuration
are a :class:`~labelgate.errors.FormatError` naming the model file and the input or
output. Nothing is downloaded: the ONNX file is local.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.errors import FormatError, ValidationError
from labelgate.ml.predictors import Pixels, postprocess

__all__ = [
    "BoxesOutput",
    "OnnxPredictor",
    "Preprocess",
    "YoloOutput",
    "letterbox_geometry",
    "masks_to_rle",
    "nms",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


@dataclass(frozen=True, slots=True)
class Preprocess:
    """How images become the model's input tensor.

    Attributes
    ----------
    size
        ``(height, width)`` of the model input; None (default): the model's own static
        size (an error when the model's spatial size is dynamic and ``resize`` is not
        ``"none"``).
    resize
        ``"letterbox"`` (default): scale to fit keeping the aspect ratio, pad the rest with
        ``pad_value``; ``"stretch"``: scale each axis to the input size; ``"none"``: feed
        the image as it is (models with a dynamic spatial size).
    center
        Letterbox only: pad both sides equally (True, default, as YOLO does) or only the
        right and bottom (False).
    pad_value
        Letterbox padding, in pixel units before scaling; default 114 (YOLO's grey).
    channel_order
        ``"rgb"`` (default) or ``"bgr"`` (OpenCV-trained and Caffe models). A model with
        one input channel gets the grey image.
    scale, mean, std
        ``input = (pixel * scale - mean) / std`` per channel, in the model's channel
        order; defaults ``1 / 255``, 0 and 1 (YOLO). ImageNet models: ``mean=(0.485, 0.456,
        0.406), std=(0.229, 0.224, 0.225)``.
    layout
        ``"NCHW"`` (default), ``"NHWC"`` (TensorFlow exports) or ``"CHW"`` (one image, no
        batch dimension: torchvision's detection exports).
    """

    size: tuple[int, int] | None = None
    resize: Literal["letterbox", "stretch", "none"] = "letterbox"
    center: bool = True
    pad_value: float = 114.0
    channel_order: Literal["rgb", "bgr"] = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    layout: Literal["NCHW", "NHWC", "CHW"] = "NCHW"

    def __post_init__(self) -> None:
        if self.resize not in ("letterbox", "stretch", "none"):
            raise ValidationError(
                f"expected letterbox, stretch or none, got {self.resize!r}", field="resize"
            )
        if self.channel_order not in ("rgb", "bgr"):
            raise ValidationError(
                f"expected rgb or bgr, got {self.channel_order!r}", field="channel_order"
            )
        if self.layout not in ("NCHW", "NHWC", "CHW"):
            raise ValidationError(
                f"expected NCHW, NHWC or CHW, got {self.layout!r}", field="layout"
            )
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValidationError(f"expected (height, width) >= 1, got {self.size}", field="size")
        if np.any(np.asarray(self.std, dtype=np.float64) == 0):
            raise ValidationError(f"expected non-zero std, got {self.std}", field="std")


@dataclass(frozen=True, slots=True)
class BoxesOutput:
    """Decoded detections: boxes, scores and labels tensors (NMS already done by the model).

    Per image: ``boxes (N, 4)``, ``scores (N,)``, ``labels (N,)``, ``masks (N, 1, H, W)``
    or ``(N, H, W)``; with a leading batch dimension ``(B, N, ...)`` for batched models.
    Rows with a negative label are padding and dropped, as are rows past ``count``.

    Attributes
    ----------
    boxes, scores
        Output names; defaults ``"boxes"``, ``"scores"``.
    labels
        Output name of the class ids; None: a one-class model (class 0). Default
        ``"labels"``.
    masks
        Output name of per-detection mask probabilities over the model's input frame
        (any resolution; resized to the image), or None (default): boxes only.
    count
        Output name of the number of valid rows per image (``num_detections``), or None.
    box_format
        ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``.
    normalized
        Box coordinates are fractions of the input width and height; default False (input
        pixels).
    yx
        Coordinates come as ``y, x`` pairs (TensorFlow: ``ymin, xmin, ymax, xmax``);
        default False.
    mask_threshold
        Mask probability above which a pixel belongs to the object; default 0.5.
    """

    boxes: str = "boxes"
    scores: str = "scores"
    labels: str | None = "labels"
    masks: str | None = None
    count: str | None = None
    box_format: BoxFormat = "xyxy"
    normalized: bool = False
    yx: bool = False
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        _check_box_format(self.box_format)


@dataclass(frozen=True, slots=True)
class YoloOutput:
    """A raw YOLO-style head: one row of box + class scores per candidate, NMS done here.

    Attributes
    ----------
    output
        Output name; None (default): the model's first output.
    box_format
        Default ``"cxcywh"`` in input pixels (YOLOv5 / v8 / 11).
    normalized
        Box coordinates are fractions of the input size; default False.
    objectness
        Rows are ``box, objectness, class scores`` (YOLOv5, v7); the score of a class is
        ``objectness * class score``. Default False (YOLOv8 and later).
    channels_first
        ``[B, 4 + C, N]`` (True, YOLOv8's export) or ``[B, N, 4 + C]`` (False); None
        (default): the shorter of the two axes holds the channels.
    score_threshold
        Candidates whose best class score is not above it are dropped before NMS;
        default 0.25.
    iou_threshold
        NMS: a box is suppressed by a higher-scoring box of its class (of any class when
        ``class_agnostic``) on the same image with IoU above it; default 0.45.
    class_agnostic
        Suppress across classes; default False.
    max_candidates
        Highest-scoring candidates per image that enter NMS; default 30,000.
    max_detections
        Detections kept per image after NMS, highest scores first; default 300.
    """

    output: str | None = None
    box_format: BoxFormat = "cxcywh"
    normalized: bool = False
    objectness: bool = False
    channels_first: bool | None = None
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    class_agnostic: bool = False
    max_candidates: int = 30_000
    max_detections: int = 300

    def __post_init__(self) -> None:
        _check_box_format(self.box_format)
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValidationError(
                f"expected an IoU in [0, 1], got {self.iou_threshold}", field="iou_threshold"
            )


def _check_box_format(box_format: str) -> None:
    if box_format not in ("xyxy", "xywh", "cxcywh"):
        raise ValidationError(
            f"expected xyxy, xywh or cxcywh, got {box_format!r}", field="box_format"
        )


def _to_xyxy(boxes: FloatArray, box_format: str) -> FloatArray:
    if box_format == "xyxy":
        return boxes
    if box_format == "xywh":
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def nms(boxes: Any, scores: Any, iou_threshold: float, groups: Any | None = None) -> IntArray:
    """Greedy non-maximum suppression within groups; kept rows, highest score first.

    A box is dropped when a higher-scoring kept box of its group overlaps it with IoU
    strictly above ``iou_threshold`` (IoU of continuous ``x1, y1, x2, y2`` boxes, the
    convention of torchvision's ``nms`` and OpenCV's ``NMSBoxes``). Equal scores keep row
    order. Rows are sorted by group, then score, so each group is a contiguous run: every
    step is one vectorized IoU of a group's best remaining box against the rest of that
    group only (``sum_g kept_g * n_g`` pairs, not ``kept * n`` over all groups at once).

    Parameters
    ----------
    boxes
        (n, 4) ``x1, y1, x2, y2``.
    scores
        (n,) confidences.
    iou_threshold
        Suppression threshold.
    groups
        (n,) integer group of each box (class ids, or image x class); None: one group.

    Returns
    -------
    (k,) int64 row indices of the kept boxes, by descending score (ties: row order).

    Examples
    --------
    >>> nms([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]],
    ...     [0.9, 0.8, 0.7, 0.6], 0.5, groups=[0, 0, 0, 1]).tolist()
    [0, 2, 3]
    """
    box = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(box)
    if len(score) != n:
        raise ValidationError(f"expected {n} scores, got {len(score)}", field="scores")
    group = (
        np.zeros(n, dtype=np.int64)
        if groups is None
        else np.asarray(groups, dtype=np.int64).reshape(-1)
    )
    if len(group) != n:
        raise ValidationError(f"expected {n} groups, got {len(group)}", field="groups")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), -score, group))
    box = box[order]
    x1, y1, x2, y2 = box.T
    area = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    keep: list[int] = []
    for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, n].tolist()):
        remaining = np.arange(lo, hi)
        while len(remaining):
            top = int(remaining[0])
            keep.append(top)
            rest = remaining[1:]
            w = (np.minimum(x2[top], x2[rest]) - np.maximum(x1[top], x1[rest])).clip(0)
            h = (np.minimum(y2[top], y2[rest]) - np.maximum(y1[top], y1[rest])).clip(0)
            inter = w * h
            union = area[top] + area[rest] - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = np.where(union > 0, inter / union, 0.0)
            remaining = rest[iou <= iou_threshold]
    kept = order[np.array(keep, dtype=np.int64)]
    return kept[np.lexsort((kept, -score[kept]))]


def letterbox_geometry(
    height: IntArray, width: IntArray, size: tuple[int, int], *, center: bool = True
) -> FloatArray:
    """Scale and offset of a letterbox resize per image: ``input = original * s + pad``.

    Each image is scaled by ``r = min(H / h, W / w)`` to ``round(h r) x round(w r)``
    pixels and padded to the input size ``(H, W)``, equally on both sides (the odd pixel
    right / bottom) when ``center``, else on the right and bottom.

    Returns
    -------
    (n, 6) float64 ``scale_x, scale_y, pad_x, pad_y, new_width, new_height``, the scales
    being the exact ratios ``new_width / w`` and ``new_height / h``.

    Examples
    --------
    >>> letterbox_geometry(np.array([480]), np.array([640]), (320, 320)).tolist()
    [[0.5, 0.5, 0.0, 40.0, 320.0, 240.0]]
    """
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    r = np.minimum(size[0] / h, size[1] / w)
    new_w = np.maximum(np.round(w * r), 1.0)
    new_h = np.maximum(np.round(h * r), 1.0)
    pad_x = np.floor((size[1] - new_w) / 2) if center else np.zeros_like(new_w)
    pad_y = np.floor((size[0] - new_h) / 2) if center else np.zeros_like(new_h)
    return np.stack([new_w / w, new_h / h, pad_x, pad_y, new_w, new_h], axis=1)


def masks_to_rle(masks: BoolArray) -> Ragged:
    """COCO RLE runs (column-major, background first) of a stack of masks, in one pass.

    Parameters
    ----------
    masks
        (n, h, w) booleans.

    Returns
    -------
    One row of uncompressed runs per mask (``Annotations.rle_counts``).

    Examples
    --------
    >>> m = np.zeros((2, 2, 3), dtype=bool); m[0, :, 1] = True; m[1, 0, 0] = True
    >>> rle = masks_to_rle(m)
    >>> rle.row(0).tolist(), rle.row(1).tolist()
    ([2, 2, 2], [0, 1, 5])
    """
    n, h, w = masks.shape
    total = h * w
    flat = np.ascontiguousarray(np.asarray(masks, dtype=bool).transpose(0, 2, 1)).reshape(n, total)
    # a run starts at pixel j > 0 where the value changes, at 0 when the mask starts set
    # (an empty background run), and every mask ends at `total`
    change = np.empty((n, total + 1), dtype=bool)
    change[:, 0] = True
    if total:
        change[:, 1] = flat[:, 0]
        change[:, 2:] = flat[:, 1:] != flat[:, :-1]
    rows, cols = np.nonzero(change)  # boundaries at positions 0, 0..total-1 (shifted by 1)
    position = np.maximum(cols - 1, 0)
    per_mask = np.bincount(rows, minlength=n)
    ends = np.full(n, total, dtype=np.int64)
    # append each mask's end boundary after its last start
    bounds = np.insert(position, np.cumsum(per_mask), ends)
    owner = np.insert(rows, np.cumsum(per_mask), np.arange(n))
    runs = np.diff(bounds)
    same = owner[1:] == owner[:-1]
    counts = runs[same]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_mask, out=offsets[1:])
    return Ragged(counts.astype(np.int64), offsets)


class OnnxPredictor:
    """A detector or instance segmenter in an ONNX file, run by ONNX Runtime.

    Parameters
    ----------
    path
        The ``.onnx`` model file.
    output
        The output decoder: :class:`BoxesOutput` (NMS done by the model; the default,
        with outputs ``boxes``, ``scores``, ``labels``) or :class:`YoloOutput`.
    preprocess
        Input size, resize, channel order, normalisation and layout; default
        :class:`Preprocess` ``()`` (the model's size, letterbox, RGB / 255, NCHW).
    input_name
        The image input; None (default): the model's only input (an error when it has
        several).
    class_map, thresholds
        Model class id -> taxonomy id and per-class minimum scores, as in
        :func:`~labelgate.ml.predictors.postprocess`.
    batch_size
        Images per ONNX Runtime call when the model's batch dimension is dynamic; 1
        otherwise. Default 8.
    threads
        ONNX Runtime's intra-op threads; None (default): its own choice (all cores).
    providers
        Execution providers; default CPU only.

    Examples
    --------
    A model whose output is the input image's box, built with the ``onnx`` package:

    >>> import tempfile, pytest
    >>> onnx = pytest.importorskip("onnx")  # the dev extra builds models
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Constant", [], ["boxes"], value=numpy_helper.from_array(
    ...          np.array([[8, 16, 24, 48]], np.float32))),
    ...      helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
    ...      helper.make_node("Reshape", ["peak", "one"], ["scores"]),
    ...      helper.make_node("Constant", [], ["labels"], value=numpy_helper.from_array(
    ...          np.array([2], np.int64)))],
    ...     "demo", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
    ...     [helper.make_tensor_value_info(name, kind, None) for name, kind in
    ...      [("boxes", TensorProto.FLOAT), ("scores", TensorProto.FLOAT),
    ...       ("labels", TensorProto.INT64)]],
    ...     [numpy_helper.from_array(np.array([1], np.int64), "one")])
    >>> path = Path(tempfile.mkdtemp()) / "demo.onnx"
    >>> onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
    ...                             ir_version=8), path)
    >>> out = OnnxPredictor(path).predict(Images.create(id=[5]), [np.full((32, 64, 3), 255)])
    >>> out.bbox.tolist(), out.score.tolist(), out.class_id.tolist()
    ([[8.0, 0.0, 24.0, 32.0]], [1.0], [2])
    """

    def __init__(
        self,
        path: Path | str,
        output: BoxesOutput | YoloOutput | None = None,
        *,
        preprocess: Preprocess | None = None,
        input_name: str | None = None,
        class_map: Mapping[int, int] | None = None,
        thresholds: Mapping[int, float] | float | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import cv2  # optional: the [ml] extra
        import onnxruntime as ort  # type: ignore[import-untyped]  # no stubs

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError("no such model file", path=self.path)
        self.output = output if output is not None else BoxesOutput()
        self.preprocess = preprocess if preprocess is not None else Preprocess()
        self.class_map = class_map
        self.thresholds = thresholds
        if batch_size < 1:
            raise ValidationError(f"expected >= 1, got {batch_size}", field="batch_size")
        self._cv2 = cv2
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise FormatError(f"ONNX Runtime cannot load the model: {exc}", path=self.path) from exc
        inputs = self.session.get_inputs()
        if input_name is None:
            if len(inputs) != 1:
                names = ", ".join(repr(i.name) for i in inputs)
                raise FormatError(
                    f"the model has {len(inputs)} inputs ({names}): name the image input "
                    "with input_name=",
                    path=self.path,
                )
            spec = inputs[0]
        else:
            found = [i for i in inputs if i.name == input_name]
            if not found:
                names = ", ".join(repr(i.name) for i in inputs)
                raise FormatError(f"no such input (inputs: {names})", path=self.path,
                                  record=f"input {input_name!r}")  # fmt: skip
            spec = found[0]
        self.input_name: str = spec.name
        self._dtype = _ONNX_DTYPES.get(spec.type)
        if self._dtype is None:
            raise FormatError(f"expected a float or uint8 image tensor, got {spec.type}",
                              path=self.path, record=f"input {spec.name!r}")  # fmt: skip
        self._configure_input(list(spec.shape))
        self.output_names = [o.name for o in self.session.get_outputs()]
        wanted: list[str | None]
        if isinstance(self.output, BoxesOutput):
            o = self.output
            wanted = [o.boxes, o.scores, o.labels, o.masks, o.count]
        else:
            wanted = [self.output.output or self.output_names[0]]
        for name in wanted:
            if name is not None and name not in self.output_names:
                names = ", ".join(repr(n) for n in self.output_names)
                raise FormatError(f"no such output (outputs: {names})", path=self.path,
                                  record=f"output {name!r}")  # fmt: skip
        self._fetch = [n for n in wanted if n is not None]
        self.batch_size = batch_size if self._dynamic_batch else 1

    def _input_error(self, message: str) -> FormatError:
        return FormatError(message, path=self.path, record=f"input {self.input_name!r}")

    def _configure_input(self, shape: list[Any]) -> None:
        """Check the input's rank, channels and size against :attr:`preprocess`."""
        layout = self.preprocess.layout
        if len(shape) != len(layout):
            raise self._input_error(
                f"expected a rank-{len(layout)} {layout} tensor, the model takes shape "
                f"{_shape_text(shape)}"
            )
        axes = {axis: shape[layout.index(axis)] for axis in layout}
        batch = axes.get("N", 1)
        self._dynamic_batch = layout != "CHW" and not isinstance(batch, int)
        if isinstance(batch, int) and batch != 1:
            raise self._input_error(
                f"expected a batch dimension of 1 or a dynamic one, got {_shape_text(shape)}"
            )
        channels = axes["C"]
        if isinstance(channels, int) and channels not in (1, 3):
            raise self._input_error(
                f"expected 1 or 3 channels ({layout}), got shape {_shape_text(shape)}"
            )
        self._channels = channels if isinstance(channels, int) else 3
        model_size = (axes["H"], axes["W"])
        static = all(isinstance(v, int) and v > 0 for v in model_size)
        size = self.preprocess.size
        if size is not None and static and tuple(size) != model_size:
            raise self._input_error(
                f"preprocess size {tuple(size)} (height, width) does not match the model's "
                f"input shape {_shape_text(shape)} ({layout})"
            )
        if size is None and static:
            size = (int(model_size[0]), int(model_size[1]))
        if size is None and self.preprocess.resize != "none":
            raise self._input_error(
                f"the model's input size is dynamic ({_shape_text(shape)}): set "
                "Preprocess(size=(height, width)) or resize='none'"
            )
        if self.preprocess.resize == "none" and static:
            size = (int(model_size[0]), int(model_size[1]))
        self.input_size: tuple[int, int] | None = size
        for name in ("mean", "std"):
            values = getattr(self.preprocess, name)
            if len(values) not in (1, self._channels):
                raise self._input_error(
                    f"{name} has {len(values)} values, the model takes {self._channels} channels"
                )

    # --- pre-processing -----------------------------------------------------------------

    def _rgb(self, pixels: Pixels) -> Pixels:
        array = np.asarray(pixels)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValidationError(
                f"expected (h, w), (h, w, 3) or (h, w, 4) pixels, got shape {array.shape}",
                field="pixels",
            )
        elif array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        elif array.shape[2] == 4:
            array = array[:, :, :3]
        if array.dtype != np.uint8 and array.dtype != np.float32:
            array = array.astype(np.float32)  # what cv2.resize takes besides uint8
        return array

    def _read(self, images: Images, root: Path | None) -> list[Pixels]:
        cv2 = self._cv2
        out = []
        for name in images.file_name.tolist():
            path = (root or Path(".")) / str(name)
            data = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if data is None:
                raise FormatError("cannot decode the image", path=path)
            out.append(cv2.cvtColor(data, cv2.COLOR_BGR2RGB))
        return out

    def _resize(self, image: Pixels) -> tuple[Pixels, FloatArray]:
        """One image into the input frame; returns it and ``sx, sy, px, py``."""
        cv2 = self._cv2
        h, w = image.shape[:2]
        pre = self.preprocess
        if pre.resize == "none":
            size = self.input_size
            if size is not None and (h, w) != size:
                raise self._input_error(
                    f"resize='none' but an image is {h}x{w}, the model takes {size[0]}x{size[1]}"
                )
            return image, np.array([1.0, 1.0, 0.0, 0.0])
        assert self.input_size is not None
        height, width = self.input_size
        if pre.resize == "stretch":
            out = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
            return out, np.array([width / w, height / h, 0.0, 0.0])
        geometry = letterbox_geometry(np.array([h]), np.array([w]), self.input_size,
                                      center=pre.center)[0]  # fmt: skip
        sx, sy, px, py, new_w, new_h = geometry
        canvas = np.full((height, width, 3), pre.pad_value, dtype=image.dtype)
        resized = cv2.resize(image, (int(new_w), int(new_h)), interpolation=cv2.INTER_LINEAR)
        canvas[int(py) : int(py) + int(new_h), int(px) : int(px) + int(new_w)] = resized
        return canvas, np.array([sx, sy, px, py])

    def _tensor(self, frames: list[Pixels]) -> Pixels:
        """Stack resized RGB frames into the model's input tensor.

        One pass per channel, written straight into the target layout:
        ``pixel * (scale / std) - mean / std``.
        """
        pre = self.preprocess
        stacked = np.stack(frames)  # (b, h, w, 3) RGB, uint8 or float32
        b, h, w = stacked.shape[:3]
        c = self._channels
        if c == 1:
            sources = [stacked.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)]
        else:
            order = (2, 1, 0) if pre.channel_order == "bgr" else (0, 1, 2)
            sources = [stacked[..., k] for k in order]
        std = np.broadcast_to(np.asarray(pre.std, dtype=np.float64), (c,))
        mean = np.broadcast_to(np.asarray(pre.mean, dtype=np.float64), (c,))
        gain = (pre.scale / std).astype(np.float32)
        offset = (mean / std).astype(np.float32)
        channels_last = pre.layout == "NHWC"
        out = np.empty((b, h, w, c) if channels_last else (b, c, h, w), dtype=np.float32)
        planes = out.transpose(0, 3, 1, 2) if channels_last else out  # (b, c, h, w) view
        for k, source in enumerate(sources):
            np.multiply(source, gain[k], out=planes[:, k], casting="unsafe")
            planes[:, k] -= offset[k]
        if self._dtype == np.uint8 or self._dtype == np.int8:
            info = np.iinfo(self._dtype)
            out = np.clip(np.round(out), info.min, info.max)
        if pre.layout == "CHW":
            out = out[0]
        return np.ascontiguousarray(out, dtype=self._dtype)

    # --- prediction ---------------------------------------------------------------------

    def predict(
        self, images: Images, pixels: Sequence[Pixels] | None = None, *, root: Path | None = None
    ) -> Annotations:
        """Detect on every image; boxes (and masks) in each image's own pixels.

        ``pixels``: one ``(h, w)``, ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA array per row of
        ``images``; without it, ``root / file_name`` is read.
        """
        if pixels is not None and len(pixels) != len(images):
            raise ValidationError(
                f"expected one pixel array per image ({len(images)}), got {len(pixels)}",
                field="pixels",
            )
        parts: list[Annotations] = []
        count = 0
        for lo in range(0, len(images), self.batch_size):
            batch = images[lo : lo + self.batch_size]
            arrays = (
                [self._rgb(p) for p in pixels[lo : lo + self.batch_size]]
                if pixels is not None
                else self._read(batch, root)
            )
            if self.preprocess.resize == "none" and len({a.shape for a in arrays}) > 1:
                groups = [[i] for i in range(len(arrays))]  # sizes differ: one image per call
            else:
                groups = [list(range(len(arrays)))]
            for group in groups:
                part = self._run(batch.id[group], [arrays[i] for i in group])
                parts.append(part.replace(id=np.arange(count + 1, count + 1 + len(part))))
                count += len(part)  # ids unique across calls (postprocess renumbers)
        if not parts:
            return postprocess(Annotations.empty())
        return postprocess(Annotations.concat(parts), class_map=self.class_map,
                           thresholds=self.thresholds)  # fmt: skip

    def input_tensor(self, pixels: Sequence[Pixels]) -> tuple[Pixels, FloatArray]:
        """The model's input for a batch of images, exactly as :meth:`predict` builds it.

        Returns the tensor and, per image, ``scale_x, scale_y, pad_x, pad_y`` of its
        resize (``input = original * scale + pad``). Images must share one size under
        ``resize="none"``.
        """
        frames, geometry = [], []
        for array in pixels:
            frame, geo = self._resize(self._rgb(array))
            frames.append(frame)
            geometry.append(geo)
        return self._tensor(frames), np.stack(geometry)

    def _run(self, image_ids: IntArray, arrays: list[Pixels]) -> Annotations:
        """One ONNX Runtime call on a batch: decode, map back to each image, build rows."""
        tensor, geo = self.input_tensor(arrays)
        layout = self.preprocess.layout
        frame_size = (
            int(tensor.shape[layout.index("H")]),
            int(tensor.shape[layout.index("W")]),
        )
        values = self.session.run(self._fetch, {self.input_name: tensor})
        outputs = dict(zip(self._fetch, values))
        masks = None
        if isinstance(self.output, BoxesOutput):
            owner, boxes, scores, labels, masks = self._decode_boxes(
                outputs, len(arrays), frame_size
            )
        else:
            owner, boxes, scores, labels = self._decode_yolo(outputs, len(arrays), frame_size)
        sizes = np.array([a.shape[:2] for a in arrays], dtype=np.int64).reshape(-1, 2)
        bbox = _undo_resize(boxes, geo[owner], sizes[owner])
        if masks is None:
            return Annotations.create(image_id=image_ids[owner], class_id=labels, bbox=bbox,
                                      score=scores)  # fmt: skip
        counts = self._masks(masks, owner, geo, sizes, frame_size)
        return Annotations.create(
            image_id=image_ids[owner],
            class_id=labels,
            bbox=bbox,
            score=scores,
            kind=np.full(len(owner), Kind.MASK, dtype=np.uint8),
            rle_counts=counts,
            rle_size=sizes[owner],
        )

    def _output_error(self, name: str, message: str) -> FormatError:
        return FormatError(message, path=self.path, record=f"output {name!r}")

    def _decode_boxes(
        self, outputs: dict[str, Any], batch: int, frame: tuple[int, int]
    ) -> tuple[IntArray, FloatArray, FloatArray, IntArray, Pixels | None]:
        """Rows of a :class:`BoxesOutput` model: owner image, xyxy input-frame boxes, ..."""
        o = self.output
        assert isinstance(o, BoxesOutput)
        boxes = np.asarray(outputs[o.boxes])
        if boxes.ndim not in (2, 3) or boxes.shape[-1] != 4:
            raise self._output_error(
                o.boxes, f"expected boxes of shape (N, 4) or (B, N, 4), got {boxes.shape}"
            )
        batched = boxes.ndim == 3
        if not batched:
            if batch != 1:
                raise self._output_error(
                    o.boxes,
                    f"shape {boxes.shape} holds one image's boxes but the call held {batch} "
                    "images: set batch_size=1",
                )
            boxes = boxes[None]
        elif boxes.shape[0] != batch:
            raise self._output_error(
                o.boxes, f"expected a batch of {batch}, got shape {boxes.shape}"
            )
        lead = (int(boxes.shape[0]), int(boxes.shape[1]))
        scores = self._column(outputs, o.scores, lead, batched, "scores")
        if o.labels is not None:
            labels = self._column(outputs, o.labels, lead, batched, "labels")
            if not np.array_equal(labels, np.round(labels)):
                raise self._output_error(o.labels, "expected integer class ids")
        else:
            labels = np.zeros(lead)
        valid = labels >= 0
        if o.count is not None:
            count = np.asarray(outputs[o.count]).reshape(-1)
            if len(count) != batch:
                raise self._output_error(
                    o.count, f"expected one count per image ({batch}), got shape {count.shape}"
                )
            valid &= np.arange(lead[1])[None, :] < count[:, None]
        owner = np.nonzero(valid)[0].astype(np.int64)
        xyxy = boxes.astype(np.float64)[valid]
        if o.yx:
            xyxy = xyxy[:, [1, 0, 3, 2]]
        xyxy = _to_xyxy(xyxy, o.box_format)
        if o.normalized:
            xyxy = xyxy * np.array([frame[1], frame[0]] * 2, dtype=np.float64)
        masks = None
        if o.masks is not None:
            raw = np.asarray(outputs[o.masks])
            if not batched:
                raw = raw[None]
            if raw.ndim == 5 and raw.shape[2] == 1:
                raw = raw[:, :, 0]
            if raw.ndim != 4 or raw.shape[:2] != lead:
                wanted = (
                    "(B, N, 1, H, W) or (B, N, H, W)" if batched else "(N, 1, H, W) or (N, H, W)"
                )
                raise self._output_error(
                    o.masks,
                    f"expected masks {wanted} for boxes {tuple(boxes.shape[batched ^ 1 :])}, "
                    f"got {np.asarray(outputs[o.masks]).shape}",
                )
            masks = raw[valid].astype(np.float32)
        return owner, xyxy, scores[valid], labels[valid].astype(np.int64), masks

    def _column(
        self, outputs: dict[str, Any], name: str, lead: tuple[int, int], batched: bool, what: str
    ) -> FloatArray:
        """A per-box output (scores, labels) as ``(B, N)`` float64, or a named error."""
        raw = np.asarray(outputs[name])
        value = raw if batched else raw[None]
        if value.ndim == 3 and value.shape[2] == 1:
            value = value[:, :, 0]
        if value.shape != lead:
            wanted = lead if batched else lead[1:]
            raise self._output_error(
                name, f"expected {what} of shape {wanted} (one per box), got {raw.shape}"
            )
        return value.astype(np.float64)

    def _decode_yolo(
        self, outputs: dict[str, Any], batch: int, frame: tuple[int, int]
    ) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
        """Best class per candidate, score threshold, class-wise NMS, top detections."""
        o = self.output
        assert isinstance(o, YoloOutput)
        name = self._fetch[0]
        head = np.asarray(outputs[name])
        if head.ndim == 2 and batch == 1:
            head = head[None]
        if head.ndim != 3 or head.shape[0] != batch:
            raise self._output_error(
                name,
                f"expected a YOLO head of shape (B, 4 + C, N) or (B, N, 4 + C) with B = {batch}, "
                f"got {head.shape}",
            )
        channels_first = o.channels_first
        if channels_first is None:
            channels_first = head.shape[1] < head.shape[2]
        if channels_first:
            head = head.transpose(0, 2, 1)
        first_class = 5 if o.objectness else 4
        if head.shape[2] <= first_class:
            layout = "(B, 4 + C, N)" if channels_first else "(B, N, 4 + C)"
            raise self._output_error(
                name,
                f"expected {first_class} box{'+objectness' if o.objectness else ''} channels "
                f"and at least one class score in {layout}, got {np.asarray(outputs[name]).shape}",
            )
        n_classes = head.shape[2] - first_class
        cls = head[:, :, first_class:].astype(np.float64)
        if o.objectness:
            cls = cls * head[:, :, 4:5].astype(np.float64)
        label = np.argmax(cls, axis=2)
        best = np.take_along_axis(cls, label[:, :, None], axis=2)[:, :, 0]
        owner, cand = np.nonzero(best > o.score_threshold)
        score = best[owner, cand]
        # at most max_candidates per image, the highest scores
        order = np.lexsort((-score, owner))
        owner, cand, score = owner[order], cand[order], score[order]
        top = _rank_in_group(owner) < o.max_candidates
        owner, cand, score = owner[top].astype(np.int64), cand[top], score[top]
        labels = label[owner, cand].astype(np.int64)
        boxes = _to_xyxy(head[owner, cand, :4].astype(np.float64), o.box_format)
        if o.normalized:  # to pixels before NMS: IoU in the frame's own aspect ratio
            boxes = boxes * np.array([frame[1], frame[0]] * 2, dtype=np.float64)
        groups = owner if o.class_agnostic else owner * n_classes + labels
        kept = nms(boxes, score, o.iou_threshold, groups=groups)
        kept = kept[np.argsort(owner[kept], kind="stable")]  # by image, then by score
        kept = kept[_rank_in_group(owner[kept]) < o.max_detections]
        return owner[kept], boxes[kept], score[kept], labels[kept]

    def _masks(
        self,
        masks: Pixels,
        owner: IntArray,
        geometry: FloatArray,
        sizes: IntArray,
        frame: tuple[int, int],
    ) -> Ragged:
        """Masks over the input frame -> each image's pixels -> RLE; one warp per image."""
        cv2 = self._cv2
        assert isinstance(self.output, BoxesOutput)
        mask_h, mask_w = masks.shape[1:]
        fx, fy = mask_w / frame[1], mask_h / frame[0]  # input-frame pixels -> mask pixels
        starts = np.searchsorted(owner, np.arange(len(sizes) + 1))  # owner is sorted
        values: list[IntArray] = []
        lengths: list[IntArray] = []
        for image in np.unique(owner).tolist():
            rows = slice(int(starts[image]), int(starts[image + 1]))
            h, w = (int(v) for v in sizes[image])
            sx, sy, px, py = geometry[image]
            # image pixel centre (u + 0.5) sits at input-frame x = (u + 0.5) sx + px; the
            # mask's pixel centres are at (m + 0.5) / fx: an affine map image -> mask
            ax, ay = sx * fx, sy * fy
            transform = np.array(
                [[ax, 0.0, 0.5 * ax + px * fx - 0.5], [0.0, ay, 0.5 * ay + py * fy - 0.5]]
            )
            stack = masks[rows].transpose(1, 2, 0)
            warped = []
            for lo in range(0, stack.shape[2], 512):  # OpenCV's channel limit
                chunk = np.ascontiguousarray(stack[:, :, lo : lo + 512])
                out = cv2.warpAffine(
                    chunk,
                    transform,
                    (w, h),
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                )
                warped.append(out.reshape(h, w, -1))
            binary = np.concatenate(warped, axis=2).transpose(2, 0, 1) > self.output.mask_threshold
            rle = masks_to_rle(binary)
            values.append(rle.values)
            lengths.append(rle.lengths)
        offsets = np.zeros(len(owner) + 1, dtype=np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
        return Ragged(flat.astype(np.int64), offsets)


def _rank_in_group(group: IntArray) -> IntArray:
    """Position of each row within its run of equal (sorted) ``group`` values."""
    return np.arange(len(group)) - np.searchsorted(group, group)


def _undo_resize(boxes: FloatArray, geometry: FloatArray, sizes: IntArray) -> FloatArray:
    """Input-frame ``x1, y1, x2, y2`` -> image pixels: remove the padding, undo the scale, clip.

    ``geometry`` rows are ``sx, sy, px, py`` of each box's image, ``sizes`` its
    ``height, width``.
    """
    x = (boxes[:, [0, 2]] - geometry[:, [2]]) / geometry[:, [0]]
    y = (boxes[:, [1, 3]] - geometry[:, [3]]) / geometry[:, [1]]
    x = np.clip(np.sort(x, axis=1), 0.0, sizes[:, [1]].astype(np.float64))
    y = np.clip(np.sort(y, axis=1), 0.0, sizes[:, [0]].astype(np.float64))
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def _shape_text(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else repr(d) for d in shape) + ")"
