"""OnnxPredictor on tiny ONNX models built here with the onnx package: expected detections
are computed by hand (letterbox geometry, pixel statistics) or by independent references
(a brute-force greedy NMS, OpenCV's NMSBoxesBatched, pycocotools' RLE)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelgate.core.annotations import Kind, Source
from labelgate.core.images import Images
from labelgate.core.masks import rle_to_string
from labelgate.errors import FormatError, ValidationError
from labelgate.ml import BoxesOutput, OnnxPredictor, Predictor, Preprocess, YoloOutput
from labelgate.ml.onnx import letterbox_geometry, masks_to_rle, nms


def _require(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        message = f"{name} not installed (pip install -e '.[ml,dev]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def onnx() -> Any:
    _require("onnxruntime")
    _require("cv2")
    return _require("onnx")


FLOAT = 1  # onnx.TensorProto.FLOAT
INT64 = 7  # onnx.TensorProto.INT64


def save_model(
    onnx: Any, path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], init: Any = ()
) -> Path:
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(init))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def const(name: str, value: Any) -> Any:
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def tensor(name: str, elem: int, shape: Any) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


# --- NMS and RLE against independent references ------------------------------------------


def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, groups: Any) -> list:
    """Greedy NMS straight from its definition: pairwise IoU, one box at a time."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        suppressed = False
        for j in kept:
            if groups[i] != groups[j]:
                continue
            a, b = boxes[i], boxes[j]
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
            if union > 0 and w * h / union > threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_brute_force_and_opencv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.permutation(n) / n + 0.001  # distinct: no tie-breaking conventions
    groups = rng.integers(0, 4, n)
    kept = nms(boxes, scores, 0.45, groups=groups)
    assert kept.tolist() == brute_force_nms(boxes, scores, 0.45, groups)
    cv2 = pytest.importorskip("cv2")
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    reference = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), groups.tolist(), 0.0, 0.45)
    assert sorted(kept.tolist()) == sorted(np.asarray(reference).reshape(-1).tolist())
    # one group: fewer kept than with four
    assert len(nms(boxes, scores, 0.45)) < len(kept)
    assert nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_masks_to_rle_equals_pycocotools() -> None:
    import pycocotools.mask as mask_util

    rng = np.random.default_rng(3)
    masks = rng.random((6, 17, 23)) > 0.6
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0] = True
    rle = masks_to_rle(masks)
    for i in range(len(masks)):
        expected = mask_util.encode(np.asfortranarray(masks[i].astype(np.uint8)))
        assert rle_to_string(rle.row(i)) == expected["counts"].decode()


def test_letterbox_geometry_by_hand() -> None:
    geo = letterbox_geometry(np.array([100, 300]), np.array([200, 100]), (64, 64))
    # 100x200 -> 0.32: 64 wide, 32 high, 16 rows of padding above; 300x100 -> 64/300
    assert np.allclose(geo[0], [0.32, 0.32, 0.0, 16.0, 64.0, 32.0])
    assert np.allclose(geo[1], [21 / 100, 64 / 300, 21.0, 0.0, 21.0, 64.0])
    corner = letterbox_geometry(np.array([100]), np.array([200]), (64, 64), center=False)
    assert corner[0, 2:4].tolist() == [0.0, 0.0]


# --- BoxesOutput: already-decoded detections ----------------------------------------------


@pytest.fixture(scope="module")
def stats_model(onnx: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two constant boxes; scores = mean and max of the input tensor; labels 1 and 3."""
    path = tmp_path_factory.mktemp("onnx") / "stats.onnx"
    nodes = [
        const("boxes", np.array([[16, 8, 48, 40], [0, 0, 64, 64]], np.float32)),
        const("labels", np.array([1, 3], np.int64)),
        const("one", np.array([1], np.int64)),
        onnx.helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        onnx.helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
        onnx.helper.make_node("Reshape", ["mean", "one"], ["mean1"]),
        onnx.helper.make_node("Reshape", ["peak", "one"], ["peak1"]),
        onnx.helper.make_node("Concat", ["mean1", "peak1"], ["scores"], axis=0),
    ]
    outputs = [tensor("boxes", FLOAT, [2, 4]), tensor("scores", FLOAT, [2]),
               tensor("labels", INT64, [2])]  # fmt: skip
    return save_model(onnx, path, nodes, [tensor("image", FLOAT, [1, 3, 64, 64])], outputs)


def test_boxes_are_mapped_back_through_the_letterbox(stats_model: Path) -> None:
    predictor = OnnxPredictor(stats_model, class_map={1: 10, 3: 30})
    assert isinstance(predictor, Predictor)
    assert predictor.input_size == (64, 64) and predictor.batch_size == 1  # static batch
    image = np.full((100, 200, 3), 200, dtype=np.uint8)  # h 100, w 200: scale 0.32, pad y 16
    out = predictor.predict(Images.create(id=[7]), [image])
    # [16, 8, 48, 40]: x / 0.32, (y - 16) / 0.32, clipped to the 200 x 100 image
    assert np.allclose(out.bbox, [[50, 0, 150, 75], [0, 0, 200, 100]])
    # half the input is the image (200 / 255), half the padding (114 / 255)
    assert np.allclose(out.score, [(200 + 114) / 2 / 255, 200 / 255], atol=1e-4)
    assert out.class_id.tolist() == [10, 30]
    assert out.image_id.tolist() == [7, 7]
    assert (out.source == Source.PRELABEL).all()


def test_stretch_and_top_left_letterbox(stats_model: Path) -> None:
    image = np.full((100, 200, 3), 200, dtype=np.uint8)
    images = Images.create(id=[1])
    stretch = OnnxPredictor(stats_model, preprocess=Preprocess(resize="stretch"))
    out = stretch.predict(images, [image])
    # x * 200 / 64, y * 100 / 64; the whole input is image: mean = max = 200 / 255
    assert np.allclose(out.bbox[0], [50, 12.5, 150, 62.5])
    assert np.allclose(out.score, [200 / 255] * 2, atol=1e-4)  # float32 sums
    corner = OnnxPredictor(stats_model, preprocess=Preprocess(center=False, pad_value=0))
    out = corner.predict(images, [image])
    assert np.allclose(out.bbox[0], [50, 25, 150, 100])  # no offset: y / 0.32, clipped
    assert np.isclose(out.score[0], 200 / 255 / 2, atol=1e-4)  # padding 0


def test_normalisation_and_channel_order(onnx: Any, tmp_path: Path) -> None:
    """Per-channel means of the input tensor as the scores of three boxes."""
    nodes = [
        const("boxes", np.array([[0, 0, 8, 8]] * 3, np.float32)),
        const("labels", np.array([0, 1, 2], np.int64)),
        const("shape", np.array([3], np.int64)),
        onnx.helper.make_node("ReduceMean", ["image"], ["means"], axes=[0, 2, 3], keepdims=0),
        onnx.helper.make_node("Reshape", ["means", "shape"], ["scores"]),
    ]
    outputs = [tensor("boxes", FLOAT, [3, 4]), tensor("scores", FLOAT, [3]),
               tensor("labels", INT64, [3])]  # fmt: skip
    path = save_model(onnx, tmp_path / "channels.onnx", nodes,
                      [tensor("image", FLOAT, [1, 3, 16, 16])], outputs)  # fmt: skip
    image = np.empty((16, 16, 3), dtype=np.uint8)
    image[:] = (10, 100, 200)  # RGB
    pre = Preprocess(channel_order="bgr", mean=(0.5, 0.4, 0.3), std=(0.25, 0.5, 2.0))
    out = OnnxPredictor(path, preprocess=pre).predict(Images.create(id=[1]), [image])
    expected = (np.array([200, 100, 10]) / 255 - [0.5, 0.4, 0.3]) / [0.25, 0.5, 2.0]
    assert np.allclose(out.score, expected, atol=1e-5)
    batch, geometry = OnnxPredictor(path, preprocess=pre).input_tensor([image])
    assert batch.shape == (1, 3, 16, 16) and batch.dtype == np.float32
    assert np.allclose(batch[0], expected[:, None, None], atol=1e-6)
    assert geometry.tolist() == [[1.0, 1.0, 0.0, 0.0]]  # 16 x 16 into 16 x 16
    gray = np.full((16, 16), 51, dtype=np.uint8)  # a grey image: three equal channels
    out = OnnxPredictor(path).predict(Images.create(id=[1]), [gray])
    assert np.allclose(out.score, [0.2] * 3, atol=1e-6)


def test_batched_tensorflow_style_outputs(onnx: Any, tmp_path: Path) -> None:
    """(B, N, 4) normalized y-x boxes, (B, N) scores and classes, (B,) counts; batch dynamic.

    Each image's scores are its mean pixel times fixed weights; the count hides row 2.
    """
    nodes = [
        const(
            "unit", np.array([[[0.25, 0.5, 0.75, 1], [0, 0, 0.5, 0.5], [0, 0, 1, 1]]], np.float32)
        ),
        const("weights", np.array([[1.0, 0.5, 0.25]], np.float32)),
        const("classes", np.array([[1, 2, 3]], np.int64)),
        const("three", np.array([3], np.int64)),
        onnx.helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
        onnx.helper.make_node("Shape", ["image"], ["full"]),
        onnx.helper.make_node("Slice", ["full", "zero", "one"], ["batch"]),
        onnx.helper.make_node("Concat", ["batch", "three"], ["bn"], axis=0),
        onnx.helper.make_node("Concat", ["batch", "three", "four"], ["bn4"], axis=0),
        onnx.helper.make_node("Reshape", ["mean", "b1"], ["mean_b1"]),
        onnx.helper.make_node("Mul", ["mean_b1", "weights"], ["scores"]),
        onnx.helper.make_node("Expand", ["unit", "bn4"], ["boxes"]),
        onnx.helper.make_node("Expand", ["classes", "bn"], ["labels"]),
        onnx.helper.make_node("Expand", ["two", "batch"], ["count"]),
    ]
    init = [
        onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
        onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
        onnx.numpy_helper.from_array(np.array([4], np.int64), "four"),
        onnx.numpy_helper.from_array(np.array([-1, 1], np.int64), "b1"),
        onnx.numpy_helper.from_array(np.array([2], np.int64), "two"),
    ]
    outputs = [tensor("boxes", FLOAT, ["b", 3, 4]), tensor("scores", FLOAT, ["b", 3]),
               tensor("labels", INT64, ["b", 3]), tensor("count", INT64, ["b"])]  # fmt: skip
    path = save_model(onnx, tmp_path / "tf.onnx", nodes,
                      [tensor("image", FLOAT, ["batch", 16, 16, 3])], outputs, init)  # fmt: skip
    config = BoxesOutput(count="count", normalized=True, yx=True)
    pre = Preprocess(layout="NHWC", resize="stretch", scale=1.0)
    predictor = OnnxPredictor(path, config, preprocess=pre, batch_size=4)
    assert predictor.batch_size == 4
    values = [10, 20, 30, 40, 50]
    pixels = [np.full((32, 64, 3), v, np.uint8) for v in values]
    out = predictor.predict(Images.create(id=[11, 12, 13, 14, 15]), pixels)
    assert out.image_id.tolist() == [11, 11, 12, 12, 13, 13, 14, 14, 15, 15]
    assert np.allclose(out.score, np.repeat(values, 2) * np.tile([1.0, 0.5], 5))
    assert out.class_id.tolist() == [1, 2] * 5
    # y-x fractions of the 64 x 32 image: [ymin .25, xmin .5, ymax .75, xmax 1]
    assert np.allclose(out.bbox[0], [32, 8, 64, 24]) and np.allclose(out.bbox[1], [0, 0, 32, 16])
    one_by_one = OnnxPredictor(path, config, preprocess=pre, batch_size=1)
    same = one_by_one.predict(Images.create(id=[11, 12, 13, 14, 15]), pixels)
    assert np.array_equal(same.bbox, out.bbox) and np.array_equal(same.score, out.score)


# --- YoloOutput: a raw head from a 1x1 convolution ---------------------------------------


def yolo_model(onnx: Any, path: Path, *, objectness: bool, channels_first: bool) -> Path:
    """A 32x32 input, 8x8 cells (N = 16): class scores are the cells' mean red and green,
    boxes 16 x 16 centred on each cell; objectness (YOLOv5 layout) is the mean blue."""
    from onnx import helper, numpy_helper

    channels = 7 if objectness else 6
    weight = np.zeros((channels - 4, 3, 1, 1), np.float32)
    if objectness:
        weight[0, 2] = weight[1, 0] = weight[2, 1] = 1.0  # obj = blue, class 0 red, 1 green
    else:
        weight[0, 0] = weight[1, 1] = 1.0
    centres = (np.arange(4) * 8 + 4).astype(np.float32)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    grid = np.stack([cx.ravel(), cy.ravel(), np.full(16, 16.0), np.full(16, 16.0)])[None]
    nodes = [
        helper.make_node("AveragePool", ["image"], ["cells"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["cells", "w"], ["cls"]),
        helper.make_node("Reshape", ["cls", "cls_shape"], ["cls_flat"]),
        helper.make_node("Conv", ["cells", "zero_w"], ["zeros"]),
        helper.make_node("Reshape", ["zeros", "box_shape"], ["zeros_flat"]),
        helper.make_node("Add", ["zeros_flat", "grid"], ["boxes"]),
        helper.make_node("Concat", ["boxes", "cls_flat"], ["head_cf"], axis=1),
    ]
    if channels_first:
        nodes[-1].output[0] = "head"
    else:
        nodes.append(helper.make_node("Transpose", ["head_cf"], ["head"], perm=[0, 2, 1]))
    init = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "zero_w"),
        numpy_helper.from_array(np.array([0, channels - 4, 16], np.int64), "cls_shape"),
        numpy_helper.from_array(np.array([0, 4, 16], np.int64), "box_shape"),
        numpy_helper.from_array(grid.astype(np.float32), "grid"),
    ]
    return save_model(onnx, path, nodes, [tensor("image", FLOAT, ["batch", 3, 32, 32])],
                      [tensor("head", FLOAT, ["b", "c", "n"])], init)  # fmt: skip


def block_image(colours: np.ndarray) -> np.ndarray:
    """A 64 x 128 image of 2 x 4 blocks of 32 x 32 pixels, one colour each."""
    return np.repeat(np.repeat(colours, 32, axis=0), 32, axis=1).astype(np.uint8)


def expected_yolo(colours: np.ndarray, objectness: bool, threshold: float, iou: float) -> tuple:
    """Hand-derived detections of yolo_model on block_image(colours).

    The 64 x 128 image letterboxes into 32 x 32 at scale 1/4 with 8 rows of padding
    above and below: cell rows 1 and 2 hold the image's two block rows, cell rows 0 and 3
    are padding (grey 114). Each input cell covers exactly one block (a 4x bilinear
    downscale of constant 32-pixel blocks samples inside one block).
    """
    cells = np.full((4, 4, 3), 114.0)
    cells[1:3] = colours
    cells = cells.reshape(16, 3) / 255
    cls = cells[:, :2] * (cells[:, 2:3] if objectness else 1.0)
    label = cls.argmax(axis=1)
    score = cls.max(axis=1)
    idx = np.flatnonzero(score > threshold)
    row, col = np.divmod(idx, 4)
    box = np.stack([col * 8 - 4, row * 8 - 4, col * 8 + 12, row * 8 + 12], axis=1).astype(float)
    kept = brute_force_nms(box, score[idx], iou, label[idx])
    box, lab, sc = box[kept], label[idx][kept], score[idx][kept]
    # back to the image: x / 0.25, (y - 8) / 0.25, clipped to 128 x 64
    image_box = np.stack([box[:, 0] * 4, (box[:, 1] - 8) * 4, box[:, 2] * 4, (box[:, 3] - 8) * 4])
    image_box = np.clip(image_box.T, 0, [128, 64, 128, 64])
    return image_box, lab, sc


@pytest.mark.parametrize(("objectness", "channels_first"), [(False, True), (True, False)])
def test_yolo_head_threshold_nms_and_letterbox(
    onnx: Any, tmp_path: Path, objectness: bool, channels_first: bool
) -> None:
    path = yolo_model(onnx, tmp_path / "yolo.onnx", objectness=objectness,
                      channels_first=channels_first)  # fmt: skip
    rng = np.random.default_rng(5)
    images, pixels, expected = [], [], []
    for image_id in (1, 2, 3):
        colours = rng.integers(0, 256, (2, 4, 3))
        colours[0, 0] = (250, 20, 240)  # a confident class-0 cell in every image
        images.append(image_id)
        pixels.append(block_image(colours))
        expected.append(expected_yolo(colours, objectness, 0.3, 0.3))
    config = YoloOutput(objectness=objectness, score_threshold=0.3, iou_threshold=0.3,
                        channels_first=None if channels_first else False)  # fmt: skip
    predictor = OnnxPredictor(path, config, batch_size=8)
    out = predictor.predict(Images.create(id=images), pixels)
    for image_id, (box, label, score) in zip(images, expected):
        got = out[out.image_id == image_id]
        assert len(box) >= 2  # the test is about something: several survivors
        order = np.lexsort((got.bbox[:, 1], got.bbox[:, 0], got.class_id))
        ref = np.lexsort((box[:, 1], box[:, 0], label))
        assert got.class_id[order].tolist() == label[ref].tolist()
        assert np.allclose(got.bbox[order], box[ref])
        assert np.allclose(got.score[order], score[ref], atol=1e-5)
    # one image per call: the same detections
    single = OnnxPredictor(path, config, batch_size=1).predict(Images.create(id=images), pixels)
    assert np.array_equal(single.bbox, out.bbox) and np.array_equal(single.score, out.score)
    # at most one detection per image, the best
    top = OnnxPredictor(path, YoloOutput(objectness=objectness, score_threshold=0.3,
                                         iou_threshold=0.3, max_detections=1,
                                         channels_first=config.channels_first))  # fmt: skip
    best = top.predict(Images.create(id=images), pixels)
    assert best.image_id.tolist() == images
    assert np.allclose(best.score, [e[2].max() for e in expected], atol=1e-5)


def test_yolo_class_agnostic_suppresses_across_classes(onnx: Any, tmp_path: Path) -> None:
    path = yolo_model(onnx, tmp_path / "yolo.onnx", objectness=False, channels_first=True)
    colours = np.zeros((2, 4, 3), np.uint8)
    colours[0, 0] = (250, 0, 0)  # class 0 at cell (1, 0)
    colours[0, 1] = (0, 200, 0)  # class 1 next to it (IoU 1/3)
    pixels = [block_image(colours)]
    wise = OnnxPredictor(path, YoloOutput(score_threshold=0.5, iou_threshold=0.3))
    assert sorted(wise.predict(Images.create(id=[1]), pixels).class_id.tolist()) == [0, 1]
    agnostic = OnnxPredictor(path, YoloOutput(score_threshold=0.5, iou_threshold=0.3,
                                              class_agnostic=True))  # fmt: skip
    assert agnostic.predict(Images.create(id=[1]), pixels).class_id.tolist() == [0]


# --- masks -> RLE ------------------------------------------------------------------------


def test_instance_masks_come_back_as_rle_in_image_pixels(onnx: Any, tmp_path: Path) -> None:
    """One detection whose mask is the red channel of the (letterboxed) input."""
    import pycocotools.mask as mask_util

    nodes = [
        const("boxes", np.array([[12, 8, 20, 24]], np.float32)),
        const("scores", np.array([0.9], np.float32)),
        const("labels", np.array([4], np.int64)),
        onnx.helper.make_node("Slice", ["image", "start", "stop", "axis"], ["masks"]),
    ]
    init = [onnx.numpy_helper.from_array(np.array([v], np.int64), name)
            for name, v in (("start", 0), ("stop", 1), ("axis", 1))]  # fmt: skip
    outputs = [tensor("boxes", FLOAT, [1, 4]), tensor("scores", FLOAT, [1]),
               tensor("labels", INT64, [1]), tensor("masks", FLOAT, [1, 1, 32, 32])]  # fmt: skip
    path = save_model(onnx, tmp_path / "masks.onnx", nodes,
                      [tensor("image", FLOAT, [1, 3, 32, 32])], outputs, init)  # fmt: skip
    image = np.zeros((64, 32, 3), np.uint8)  # h 64, w 32: scale 0.5, 8 columns of padding
    image[16:48, 8:24, 0] = 255
    predictor = OnnxPredictor(path, BoxesOutput(masks="masks"), preprocess=Preprocess(pad_value=0))
    out = predictor.predict(Images.create(id=[2]), [image])
    assert out.kind.tolist() == [Kind.MASK]
    assert out.rle_size.tolist() == [[64, 32]]
    rle = {"counts": out.rle_counts.row(0).tolist(), "size": [64, 32]}
    decoded = mask_util.decode(mask_util.frPyObjects(rle, 64, 32))
    assert np.array_equal(decoded.astype(bool), image[:, :, 0] > 0)
    assert out.area.tolist() == [32 * 16]
    assert np.allclose(out.bbox, [[8, 16, 24, 48]])  # the box, (x - 8) / 0.5, y / 0.5


# --- configuration errors name the file and the tensor ----------------------------------


def test_mismatched_configuration_is_a_named_error(stats_model: Path, tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"stats\.onnx: input 'image': preprocess size"):
        OnnxPredictor(stats_model, preprocess=Preprocess(size=(32, 32)))
    with pytest.raises(FormatError, match=r"stats\.onnx: input 'image': expected a rank-3"):
        OnnxPredictor(stats_model, preprocess=Preprocess(layout="CHW"))
    with pytest.raises(FormatError, match=r"stats\.onnx: output 'dets': no such output"):
        OnnxPredictor(stats_model, BoxesOutput(boxes="dets"))
    with pytest.raises(FormatError, match=r"input 'x': no such input"):
        OnnxPredictor(stats_model, input_name="x")
    with pytest.raises(FormatError, match="no such model file"):
        OnnxPredictor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FormatError, match=r"junk\.onnx: ONNX Runtime cannot load"):
        OnnxPredictor(tmp_path / "junk.onnx")
    with pytest.raises(FormatError, match=r"output 'scores': expected a YOLO head"):
        OnnxPredictor(stats_model, YoloOutput(output="scores")).predict(
            Images.create(id=[1]), [np.zeros((8, 8, 3), np.uint8)]
        )
    with pytest.raises(FormatError, match=r"output 'labels': expected masks"):
        OnnxPredictor(stats_model, BoxesOutput(masks="labels")).predict(
            Images.create(id=[1]), [np.zeros((8, 8, 3), np.uint8)]
        )
    with pytest.raises(ValidationError, match="one pixel array per image"):
        OnnxPredictor(stats_model).predict(Images.create(id=[1, 2]), [np.zeros((8, 8, 3))])
    with pytest.raises(ValidationError, match="box_format"):
        BoxesOutput(box_format="ltrb")  # type: ignore[arg-type]


def test_per_image_outputs_with_a_dynamic_batch_need_batch_size_one(
    onnx: Any, tmp_path: Path
) -> None:
    nodes = [
        const("boxes", np.array([[0, 0, 4, 4]], np.float32)),
        const("scores", np.array([0.5], np.float32)),
        const("labels", np.array([0], np.int64)),
    ]
    outputs = [tensor("boxes", FLOAT, [1, 4]), tensor("scores", FLOAT, [1]),
               tensor("labels", INT64, [1])]  # fmt: skip
    nodes.append(onnx.helper.make_node("Identity", ["image"], ["unused"]))
    path = save_model(onnx, tmp_path / "per_image.onnx", nodes,
                      [tensor("image", FLOAT, ["n", 3, 8, 8])],
                      [*outputs, tensor("unused", FLOAT, ["n", 3, 8, 8])])  # fmt: skip
    pixels = [np.zeros((8, 8, 3), np.uint8)] * 2
    with pytest.raises(FormatError, match=r"output 'boxes': .* set batch_size=1"):
        OnnxPredictor(path).predict(Images.create(id=[1, 2]), pixels)
    out = OnnxPredictor(path, batch_size=1).predict(Images.create(id=[1, 2]), pixels)
    assert out.image_id.tolist() == [1, 2]


def test_torchvision_style_chw_input_and_image_files(onnx: Any, tmp_path: Path) -> None:
    """A CHW input of any size (torchvision's exports): boxes come back unscaled."""
    import cv2

    nodes = [
        const("boxes", np.array([[1, 2, 5, 6]], np.float32)),
        onnx.helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        onnx.helper.make_node("Reshape", ["mean", "one"], ["scores"]),
        const("labels", np.array([1], np.int64)),
    ]
    init = [onnx.numpy_helper.from_array(np.array([1], np.int64), "one")]
    outputs = [tensor("boxes", FLOAT, [1, 4]), tensor("scores", FLOAT, [1]),
               tensor("labels", INT64, [1])]  # fmt: skip
    path = save_model(onnx, tmp_path / "chw.onnx", nodes,
                      [tensor("image", FLOAT, [3, "h", "w"])], outputs, init)  # fmt: skip
    with pytest.raises(FormatError, match="dynamic"):
        OnnxPredictor(path, preprocess=Preprocess(layout="CHW"))
    predictor = OnnxPredictor(path, preprocess=Preprocess(layout="CHW", resize="none"))
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 0] = 255  # red: RGB mean 1/3
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((10, 12, 3), np.uint8))
    out = predictor.predict(Images.create(id=[1, 2], file_name=["a.png", "b.png"]),
                            root=tmp_path)  # fmt: skip
    assert out.image_id.tolist() == [1, 2]
    assert np.allclose(out.bbox, [[1, 2, 5, 6], [1, 2, 5, 6]])
    assert np.allclose(out.score, [1 / 3, 0.0], atol=1e-6)
