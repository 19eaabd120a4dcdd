from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, Source
from labelgate.core.images import Images
from labelgate.errors import FormatError, ValidationError
from labelgate.ml.predictors import (
    CascadePredictor,
    PredictionsFile,
    Predictor,
    draw_face,
    postprocess,
)

FACE = "haarcascade_frontalface_default.xml"


def test_postprocess_maps_classes_and_applies_per_class_thresholds() -> None:
    pred = Annotations.create(
        image_id=[1, 1, 2, 2, 3],
        class_id=[0, 1, 0, 1, 2],
        score=[0.9, 0.45, 0.3, 0.95, 0.99],
        bbox=[[0, 0, 1, 1]] * 5,
    )
    out = postprocess(pred, class_map={0: 7, 1: 8}, thresholds={7: 0.5, 8: 0.4}, first_id=10)
    # class 2 is not in the map: dropped; 0.3 < 0.5 for class 7: dropped
    assert out.image_id.tolist() == [1, 1, 2]
    assert out.class_id.tolist() == [7, 8, 8]
    assert out.id.tolist() == [10, 11, 12]
    assert (out.source == Source.PRELABEL).all()
    assert len(postprocess(pred, thresholds=0.96)) == 1


def test_predictions_file_returns_the_rows_of_the_requested_images(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            [
                {"image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4], "score": 0.9},
                {"image_id": 2, "category_id": 3, "bbox": [1, 1, 4, 4], "score": 0.8},
                {"image_id": 2, "category_id": 4, "bbox": [1, 1, 2, 2], "score": 0.2},
            ]
        )
    )
    predictor = PredictionsFile(path, class_map={3: 1, 4: 2}, thresholds={2: 0.5})
    assert isinstance(predictor, Predictor)
    out = predictor.predict(Images.create(id=[2, 5]))
    assert out.image_id.tolist() == [2]
    assert out.class_id.tolist() == [1]
    assert out.bbox.tolist() == [[1.0, 1.0, 5.0, 5.0]]  # COCO xywh -> xyxy


def test_predictions_file_without_scores_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4]}]))
    with pytest.raises(FormatError, match="score"):
        PredictionsFile(path)


@pytest.fixture(scope="module")
def cv2_module() -> object:
    """OpenCV, from the [ml] extra: skipped without it locally, required under CI=true."""
    try:
        import cv2
    except ImportError:
        message = "opencv-python-headless not installed (pip install -e '.[ml]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    return cv2


def test_cascade_finds_the_drawn_face_where_it_is(cv2_module: object) -> None:
    predictor = CascadePredictor({1: FACE})
    assert isinstance(predictor, Predictor)
    canvas = np.full((300, 400, 3), 60, dtype=np.uint8)
    canvas[40:240, 150:350] = draw_face(200)
    out = predictor.predict(Images.create(id=[3, 4]), [canvas, np.full((100, 100), 60, np.uint8)])
    assert out.image_id.tolist() == [3]  # the blank image has no face
    x1, y1, x2, y2 = out.bbox[0]
    assert 140 <= x1 <= 190 and 30 <= y1 <= 80 and 310 <= x2 <= 360 and 200 <= y2 <= 250
    assert 0.5 < out.score[0] <= 1.0
    assert out.source[0] == Source.PRELABEL


def test_cascade_finds_the_astronauts_face(cv2_module: object) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image's sample photographs")
    out = CascadePredictor({1: FACE}).predict(Images.create(id=[1]), [data.astronaut()])
    # Eileen Collins' face in the 512x512 photograph, about x 175-275, y 65-165
    assert len(out) == 1
    centre = (out.bbox[0, :2] + out.bbox[0, 2:]) / 2
    assert np.allclose(centre, [225, 113], atol=25)


def test_cascade_reads_image_files_and_thresholds(cv2_module: object, tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "face.png"), draw_face(256))
    images = Images.create(id=[9], file_name=["face.png"])
    found = CascadePredictor({5: FACE}, batch_size=1).predict(images, root=tmp_path)
    assert found.class_id.tolist() == [5]
    assert len(CascadePredictor({5: FACE}, thresholds=1.0).predict(images, root=tmp_path)) == 0
    with pytest.raises(FormatError, match="cannot decode"):
        CascadePredictor({5: FACE}).predict(Images.create(id=[1], file_name=["no.png"]),
                                            root=tmp_path)  # fmt: skip


def test_cascade_refuses_unknown_files_and_mismatched_pixels(cv2_module: object) -> None:
    with pytest.raises(FormatError, match="cascade"):
        CascadePredictor({1: "no_such_cascade.xml"})
    with pytest.raises(ValidationError, match="one pixel array per image"):
        CascadePredictor({1: FACE}).predict(Images.create(id=[1, 2]), [draw_face(64)])


def test_a_pickled_cascade_predictor_detects_exactly_what_the_original_does(
    cv2_module: object, tmp_path: Path
) -> None:
    import pickle
    import shutil

    import cv2

    alt = tmp_path / "alt.xml"  # one cascade by path, one by its name in the wheel
    shutil.copy(Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt.xml", alt)
    settings = {"thresholds": {1: 0.5}, "scale_factor": 1.05, "min_neighbors": 3,
                "min_size": (20, 20), "batch_size": 2}  # fmt: skip
    original = CascadePredictor({1: FACE, 2: alt}, **settings)  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(original))
    assert copy.cascades == {1: FACE, 2: str(alt)}
    assert (copy.scale_factor, copy.min_neighbors, copy.min_size, copy.batch_size) == (
        1.05, 3, (20, 20), 2,
    )  # fmt: skip
    images = Images.create(id=[4, 2, 9])
    pixels = [draw_face(256), draw_face(200), np.full((90, 120), 60, np.uint8)]
    expected = original.predict(images, pixels)
    assert set(expected.class_id.tolist()) == {1, 2}  # both cascades find the faces
    got = copy.predict(images, pixels)
    for name in ("id", "image_id", "class_id", "bbox", "score", "source"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    # the classifiers are loaded where the copy is made: a file gone by then is named
    data = pickle.dumps(original)
    alt.unlink()
    with pytest.raises(FormatError, match=r"alt\.xml"):
        pickle.loads(data)
