"""runners: measure a ResNet3d configuration (accuracy, FLOPs, latency) and load video data."""

from __future__ import annotations

from runners.data.datasets import DataConfig, DataKind, build_datasets, build_loader
from runners.data.motion import MotionDataset
from runners.data.sampling import sample_frame_indices
from runners.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipPipeline
from runners.data.video import ClassFolderDataset, CorruptVideoWarning, VideoListDataset
from runners.data.video_reader import VideoDecodeError, VideoReader, probe_video
from runners.latency.measure import (
    LatencyConfig,
    LatencyMode,
    LatencyResult,
    PreparedModel,
    measure_latency,
    measure_model_latency,
    prepare_model,
    resolve_device,
)
from runners.model import I3DHead, Recognizer3D, build_recognizer
from runners.scores.flops import FlopsMismatchError, FlopsResult, measure_flops
from runners.training.accuracy import (
    AccuracyResult,
    EvaluationResult,
    TrainConfig,
    evaluate_checkpoint,
    train_and_evaluate,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AccuracyResult",
    "ClassFolderDataset",
    "ClipPipeline",
    "CorruptVideoWarning",
    "DataConfig",
    "DataKind",
    "EvaluationResult",
    "FlopsMismatchError",
    "FlopsResult",
    "I3DHead",
    "LatencyConfig",
    "LatencyMode",
    "LatencyResult",
    "MotionDataset",
    "PreparedModel",
    "Recognizer3D",
    "TrainConfig",
    "VideoDecodeError",
    "VideoListDataset",
    "VideoReader",
    "build_datasets",
    "build_loader",
    "build_recognizer",
    "evaluate_checkpoint",
    "measure_flops",
    "measure_latency",
    "measure_model_latency",
    "prepare_model",
    "probe_video",
    "resolve_device",
    "sample_frame_indices",
    "train_and_evaluate",
]
