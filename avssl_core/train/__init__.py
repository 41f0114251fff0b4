"""The trainer every pretraining method shares: loop, DDP, precision, checkpoints, exact resume, logs."""

from avssl_core.train.checkpoint import (
    CheckpointMismatchError,
    CheckpointReadError,
    check_signature,
    checkpoint_path,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from avssl_core.train.distributed import DistContext, init_distributed, shutdown_distributed
from avssl_core.train.failures import FAILED_KEY, DecodeFailureTracker, failed_entries
from avssl_core.train.metrics_log import MetricsWriter
from avssl_core.train.optim import LearningRateSchedule, build_optimizer
from avssl_core.train.throughput import ThroughputMeter
from avssl_core.train.trainer import (
    IndexSampler,
    SamplerFactory,
    TrainConfig,
    default_sampler_factory,
    resolve_precision,
    train,
)

__all__ = [
    "FAILED_KEY",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "DecodeFailureTracker",
    "DistContext",
    "IndexSampler",
    "LearningRateSchedule",
    "MetricsWriter",
    "SamplerFactory",
    "ThroughputMeter",
    "TrainConfig",
    "build_optimizer",
    "check_signature",
    "checkpoint_path",
    "default_sampler_factory",
    "failed_entries",
    "find_latest_checkpoint",
    "init_distributed",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_precision",
    "save_checkpoint",
    "shutdown_distributed",
    "train",
]
