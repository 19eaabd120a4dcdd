"""TorchvisionPredictor against the same torchvision model called directly.

torch / torchvision are the optional [torch] extra, not in CI: every test is skipped
without them (pip install torch==2.14.1 torchvision==0.29.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelgate.core.annotations import Kind, Source
from labelgate.core.images import Images
from labelgate.errors import FormatError, ValidationError
from labelgate.ml.predictors import Predictor
from labelgate.ml.torch import TorchvisionPredictor

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def pictures(seed: int, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        image[y : y + h // 3, x : x + w // 3] = rng.integers(150, 255, 3)  # a bright block
        out.append(image)
    return out


def direct(model: Any, pixels: list[np.ndarray], batch_size: int) -> list[dict[str, Any]]:
    """The model called by hand: RGB uint8 -> float [0, 1] CHW tensors, batches, no grad."""
    results = []
    with torch.no_grad():
        for lo in range(0, len(pixels), batch_size):
            batch = [torch.from_numpy(p.transpose(2, 0, 1).astype(np.float32) / 255.0)
                     for p in pixels[lo : lo + batch_size]]  # fmt: skip
            results.extend(model(batch))
    return results


@pytest.fixture(scope="module")
def fasterrcnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    torch.manual_seed(0)
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    # untrained: every proposal scores about 1 / 3; keep them all (box_score_thresh 0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, box_score_thresh=0.0,
        box_detections_per_img=20,
    )  # fmt: skip
    model.eval()
    path = tmp_path_factory.mktemp("torch") / "frcnn.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_adapter_equals_the_model_called_directly(fasterrcnn: tuple[Any, Path]) -> None:
    model, path = fasterrcnn
    kwargs = {"box_score_thresh": 0.0, "box_detections_per_img": 20}
    predictor = TorchvisionPredictor(
        path, model="fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3,
        model_kwargs=kwargs, batch_size=2, threads=2,
    )  # fmt: skip
    assert isinstance(predictor, Predictor)
    pixels = pictures(0, [(120, 160), (200, 100), (96, 96)])
    out = predictor.predict(Images.create(id=[4, 5, 6]), pixels)
    reference = direct(model, pixels, batch_size=2)
    counts = [len(r["scores"]) for r in reference]
    assert sum(counts) > 0  # the comparison has rows to compare
    assert out.image_id.tolist() == np.repeat([4, 5, 6], counts).tolist()
    expected_boxes = np.concatenate([r["boxes"].numpy() for r in reference])
    assert np.allclose(out.bbox, expected_boxes, atol=1e-4)
    assert np.allclose(out.score, np.concatenate([r["scores"].numpy() for r in reference]))
    assert (
        out.class_id.tolist() == np.concatenate([r["labels"].numpy() for r in reference]).tolist()
    )
    assert (out.source == Source.PRELABEL).all()
    # boxes lie in each image's own pixels
    widths = np.repeat([160, 100, 96], counts)
    assert (out.bbox[:, 2] <= widths + 1e-3).all()
    # class map and thresholds as in every adapter
    mapped = TorchvisionPredictor(
        path, model="fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3, model_kwargs=kwargs,
        class_map={1: 10}, thresholds=0.3,
    ).predict(Images.create(id=[4, 5, 6]), pixels)  # fmt: skip
    keep = (out.class_id == 1) & (out.score >= 0.3)
    assert mapped.class_id.tolist() == [10] * int(keep.sum())
    assert np.allclose(mapped.bbox, out.bbox[keep], atol=1e-4)


def test_image_files_are_read_as_rgb(fasterrcnn: tuple[Any, Path], tmp_path: Path) -> None:
    from PIL import Image

    model, path = fasterrcnn
    pixels = pictures(1, [(80, 90)])
    Image.fromarray(pixels[0]).save(tmp_path / "a.png")
    predictor = TorchvisionPredictor(
        path, model="fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3,
        model_kwargs={"box_score_thresh": 0.0, "box_detections_per_img": 20},
    )  # fmt: skip
    out = predictor.predict(Images.create(id=[1], file_name=["a.png"]), root=tmp_path)
    assert np.allclose(out.score, direct(model, pixels, 1)[0]["scores"].numpy())


def test_mask_rcnn_masks_become_rle(tmp_path: Path) -> None:
    import pycocotools.mask as mask_util
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(1)
    kwargs = {"min_size": 96, "max_size": 128, "box_score_thresh": 0.0,
              "box_detections_per_img": 5}  # fmt: skip
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, **kwargs)
    model.eval()
    path = tmp_path / "maskrcnn.pt"
    torch.save(model.state_dict(), path)
    pixels = pictures(2, [(96, 128)])
    predictor = TorchvisionPredictor(
        path, model="maskrcnn_resnet50_fpn", num_classes=2, model_kwargs=kwargs
    )
    out = predictor.predict(Images.create(id=[3]), pixels)
    reference = direct(model, pixels, 1)[0]
    assert len(out) == len(reference["scores"]) > 0
    assert (out.kind == Kind.MASK).all() and out.rle_size.tolist() == [[96, 128]] * len(out)
    for i in range(len(out)):
        rle = {"counts": out.rle_counts.row(i).tolist(), "size": [96, 128]}
        decoded = mask_util.decode(mask_util.frPyObjects(rle, 96, 128))
        assert np.array_equal(decoded.astype(bool), reference["masks"][i, 0].numpy() > 0.5)


def test_weights_that_do_not_fit_are_a_named_error(
    fasterrcnn: tuple[Any, Path], tmp_path: Path
) -> None:
    _, path = fasterrcnn
    with pytest.raises(FormatError, match=r"frcnn\.pt: does not fit .*num_classes=5"):
        TorchvisionPredictor(path, model="fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=5)
    with pytest.raises(FormatError, match="no such weights file"):
        TorchvisionPredictor(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(FormatError, match=r"junk\.pt: cannot load"):
        TorchvisionPredictor(tmp_path / "junk.pt")
    with pytest.raises(ValidationError, match="model"):
        TorchvisionPredictor(path, model="resnet50")
