"""Optimization-based 3D Gaussian Splatting (gsplat's simple_trainer recipe) on both devices.

Examples:
    >>> from pipelines.optimize import Trainer, preset, load_training_data, init_from_points
"""

from pipelines.optimize.config import (
    PRESETS,
    DensifyConfig,
    LearningRates,
    MCMCConfig,
    OptimizeConfig,
    default_preset,
    preset,
)
from pipelines.optimize.data import TrainingData, load_training_data, training_size
from pipelines.optimize.init import from_params, init_from_points, scene_scale, to_params
from pipelines.optimize.trainer import (
    LiveUpdate,
    OptimizationDiverged,
    SkippedStep,
    Trainer,
    TrainResult,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "PRESETS",
    "DensifyConfig",
    "LearningRates",
    "MCMCConfig",
    "OptimizeConfig",
    "default_preset",
    "preset",
    "TrainingData",
    "load_training_data",
    "training_size",
    "from_params",
    "init_from_points",
    "scene_scale",
    "to_params",
    "LiveUpdate",
    "OptimizationDiverged",
    "SkippedStep",
    "Trainer",
    "TrainResult",
    "load_checkpoint",
    "save_checkpoint",
]
