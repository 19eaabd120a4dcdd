"""Pre-labeling throughput: the OpenCV cascade and ONNX Runtime adapters on 2 cores.

Run:  python benchmarks/bench_prelabel.py [--images 32] [--repeat 3] [--threads 2]
                                          [--size 320] [--batch 8]

Images: driving scenes rendered by ``labelgate.formats.render`` from
``labelgate.core.generate`` (640x480 to 1920x1080, ~20 objects each) and scikit-image's
512x512 astronaut photograph, decoded once before timing (the adapters get pixels, as
the pre-labeling stage hands them over); the time covers pre-processing, inference,
decoding and the ``Annotations`` of the batch.

Adapters:

- ``CascadePredictor`` with OpenCV's frontal-face cascade (shipped in the wheel),
  ``cv2.setNumThreads(threads)``;
- ``OnnxPredictor`` on a detector the benchmark builds with the ``onnx`` package: a
  YOLO-style fully convolutional network (3x3 convolutions with ReLU, strides 2 to a
  stride-8 grid, widths 16-32-64-128, then a 1x1 head of 4 box + 8 class channels with
  sigmoid and a grid decode in the graph), ``--size`` square input (default 320: 1,600
  candidates), random He-initialised weights with a class bias of -3 (a few per cent of
  the candidates pass the 0.25 threshold, as with a trained model on busy scenes); its
  FLOPs are printed. Letterbox, YOLO head decoding and class-wise NMS in numpy
  (``YoloOutput``), ``threads`` intra-op threads.

Single: one image per ``predict`` call; batched: all images in one call, ``--batch``
images per ONNX Runtime run (the model's batch dimension is dynamic). Times are the median
of ``--repeat``; the machine is shared, so wall times vary between runs (the ``cpu s``
column is the process time per run, all threads). ``model only`` rows time ONNX Runtime's
``run`` alone on ready input tensors: the rest of an ONNX row is pre-processing (decoding
nothing: resize and letterbox of the full-size image), head decoding and NMS.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.formats.render import render_image

CLASSES = 8
WIDTHS = [(3, 16, 2), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1),
          (64, 128, 1)]  # fmt: skip


def build_detector(path: Path, size: int, seed: int = 0) -> float:
    """Write the benchmark's YOLO-style ONNX detector; return its FLOPs per image."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    nodes, init = [], []
    flops = 0.0
    name, side = "image", size
    for i, (c_in, c_out, stride) in enumerate(WIDTHS):
        weight = rng.normal(0, np.sqrt(2 / (9 * c_in)), (c_out, c_in, 3, 3)).astype(np.float32)
        init += [numpy_helper.from_array(weight, f"w{i}"),
                 numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")]  # fmt: skip
        nodes += [
            helper.make_node(
                "Conv",
                [name, f"w{i}", f"b{i}"],
                [f"c{i}"],
                kernel_shape=[3, 3],
                strides=[stride, stride],
                pads=[1, 1, 1, 1],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        side //= stride
        flops += 2.0 * c_out * side * side * c_in * 9
        name = f"r{i}"
    channels = 4 + CLASSES
    c_last = WIDTHS[-1][1]
    head_w = rng.normal(0, np.sqrt(1 / c_last), (channels, c_last, 1, 1)).astype(np.float32)
    head_b = np.r_[np.zeros(4), np.full(CLASSES, -3.0)].astype(np.float32)
    flops += 2.0 * channels * side * side * c_last
    n = side * side
    stride = size / side
    gy, gx = np.divmod(np.arange(n), side)
    # YOLO-style decode: centre = (grid + 2 sigmoid - 0.5) * stride, size = 8 stride sigmoid
    scale = np.ones((1, channels, n), np.float32)
    shift = np.zeros((1, channels, n), np.float32)
    scale[0, :2] = 2 * stride
    shift[0, 0] = (gx - 0.5) * stride
    shift[0, 1] = (gy - 0.5) * stride
    scale[0, 2:4] = 8 * stride
    init += [
        numpy_helper.from_array(head_w, "wh"),
        numpy_helper.from_array(head_b, "bh"),
        numpy_helper.from_array(np.array([0, channels, n], np.int64), "shape"),
        numpy_helper.from_array(scale, "scale"),
        numpy_helper.from_array(shift, "shift"),
    ]
    nodes += [
        helper.make_node("Conv", [name, "wh", "bh"], ["head"]),
        helper.make_node("Reshape", ["head", "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["prob"]),
        helper.make_node("Mul", ["prob", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bench_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", channels, n])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    save(model, path)
    return flops


def scenes(n_images: int) -> tuple[Images, list[Any]]:
    dataset = generate_dataset(n_images, seed=0)
    pixels = [render_image(dataset, int(i), seed=0) for i in dataset.images.id.tolist()]
    return dataset.images, pixels


def measure(predictor: Any, images: Images, pixels: list[Any], single: bool, repeat: int) -> tuple:
    if single:
        one = [images[i : i + 1] for i in range(len(images))]

        def run() -> int:
            return sum(len(predictor.predict(im, [p])) for im, p in zip(one, pixels))

    else:

        def run() -> int:
            return len(predictor.predict(images, pixels))

    cpu = time.process_time()
    times, found = timed(run, repeat)
    cpu = (time.process_time() - cpu) / repeat
    return statistics.median(times), min(times), max(times), cpu, found


def inference_only(predictor: Any, pixels: list[Any], batch: int, repeat: int) -> tuple:
    """ONNX Runtime's run alone on ready input tensors: the model's share of the time."""
    tensors = [predictor.input_tensor(pixels[lo : lo + batch])[0]
               for lo in range(0, len(pixels), batch)]  # fmt: skip

    def run() -> int:
        for tensor in tensors:
            predictor.session.run(None, {predictor.input_name: tensor})
        return 0

    cpu = time.process_time()
    times, _ = timed(run, repeat)
    cpu = (time.process_time() - cpu) / repeat
    return statistics.median(times), min(times), max(times), cpu, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import cv2

    from labelgate.ml import CascadePredictor, OnnxPredictor, YoloOutput

    cv2.setNumThreads(args.threads)
    images, rendered = scenes(args.images)
    sizes = sorted({f"{p.shape[1]}x{p.shape[0]}" for p in rendered})
    print(f"rendered scenes: {len(rendered)} images ({', '.join(sizes)})")
    workloads = [("rendered scenes", images, rendered)]
    try:
        from skimage.data import astronaut

        photo = astronaut()
        workloads.append(
            ("astronaut 512x512", Images.create(id=np.arange(1, args.images + 1)),
             [photo] * args.images)
        )  # fmt: skip
    except ImportError:
        print("scikit-image not installed: the astronaut rows are skipped")

    rows = []
    cascade = CascadePredictor({1: "haarcascade_frontalface_default.xml"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "detector.onnx"
        flops = build_detector(path, args.size)
        print(
            f"ONNX detector: {args.size}x{args.size} input, {len(WIDTHS)} 3x3 convolutions "
            f"+ 1x1 head, {(args.size // 8) ** 2} candidates x {CLASSES} classes, "
            f"{flops / 1e9:.2f} GFLOPs per image"
        )
        onnx_single = OnnxPredictor(path, YoloOutput(), batch_size=1, threads=args.threads)
        onnx_batched = OnnxPredictor(
            path, YoloOutput(), batch_size=args.batch, threads=args.threads
        )
        for data, imgs, pixels in workloads:
            for adapter, predictor, mode, single in [
                ("OpenCV cascade", cascade, "single", True),
                ("OpenCV cascade", cascade, "batched", False),
                ("ONNX Runtime", onnx_single, "single", True),
                ("ONNX Runtime", onnx_batched, f"batch {args.batch}", False),
            ]:
                result = measure(predictor, imgs, pixels, single, args.repeat)
                rows.append((adapter, data, mode, len(imgs), *result))
            result = inference_only(onnx_batched, pixels, args.batch, args.repeat)
            rows.append(("  model only", data, f"batch {args.batch}", len(imgs), *result))

    print(
        f"\n{'adapter':<16}{'images':<20}{'mode':<10}{'n':>4}{'median s':>10}"
        f"{'min..max s':>16}{'images/s':>10}{'ms/image':>10}{'cpu s':>8}{'img/cpu s':>10}"
        f"{'found':>7}"
    )
    for adapter, data, mode, n, median, low, high, cpu, found in rows:
        print(
            f"{adapter:<16}{data:<20}{mode:<10}{n:>4}{median:>10.3f}"
            f"{low:>8.3f}..{high:<6.3f}{n / median:>10.1f}{1000 * median / n:>10.1f}"
            f"{cpu:>8.2f}{n / cpu:>10.1f}{found:>7}"
        )
    print(f"\n{args.threads} threads (cv2.setNumThreads, ONNX Runtime intra-op), median of "
          f"{args.repeat}")  # fmt: skip


if __name__ == "__main__":
    main()
