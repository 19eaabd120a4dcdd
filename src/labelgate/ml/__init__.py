"""Model assistance: predictors, pre-labeling, label-error detection, active learning.

The Ray scale-out (:mod:`labelgate.ml.distributed`) is exported here too; Ray itself is
imported only when one of its functions runs.
"""

from labelgate.ml.distributed import (
    ShardPlan,
    compare_sharded,
    evaluate_sharded,
    find_label_errors_sharded,
    match_sharded,
    plan_shards,
    prelabel_sharded,
    ray_session,
)
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
    "ShardPlan",
    "TorchvisionPredictor",
    "YoloOutput",
    "compare_sharded",
    "confident_thresholds",
    "evaluate_sharded",
    "find_label_errors",
    "find_label_errors_sharded",
    "image_uncertainty",
    "injected_recall",
    "k_center_greedy",
    "match_sharded",
    "plan_shards",
    "postprocess",
    "prelabel_batch",
    "prelabel_sharded",
    "ray_session",
    "select",
    "simulate_active_learning",
]
