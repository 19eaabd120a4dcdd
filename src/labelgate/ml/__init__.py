"""Model assistance: predictors, pre-labeling, label-error detection, active learning."""

from labelgate.ml.errors import (
    ErrorReport,
    ErrorType,
    confident_thresholds,
    find_label_errors,
    injected_recall,
)
from labelgate.ml.onnx import BoxesOutput, OnnxPredictor, Preprocess, YoloOutput
from labelgate.ml.predictors import CascadePredictor, PredictionsFile, Predictor, postprocess
from labelgate.ml.prelabel import PrelabelRun, prelabel_batch
from labelgate.ml.select import (
    ActiveLearningCurve,
    image_uncertainty,
    k_center_greedy,
    select,
    simulate_active_learning,
)
from labelgate.ml.torch import TorchvisionPredictor

__all__ = [
    "ActiveLearningCurve",
    "BoxesOutput",
    "CascadePredictor",
    "ErrorReport",
    "ErrorType",
    "OnnxPredictor",
    "PredictionsFile",
    "Predictor",
    "PrelabelRun",
    "Preprocess",
    "TorchvisionPredictor",
    "YoloOutput",
    "confident_thresholds",
    "find_label_errors",
    "image_uncertainty",
    "injected_recall",
    "k_center_greedy",
    "postprocess",
    "prelabel_batch",
    "select",
    "simulate_active_learning",
]
