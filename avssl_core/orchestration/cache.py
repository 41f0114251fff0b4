"""Content-hash cache keys for the stage tasks, and the check that a cached result may be reused.

A task's cache key (``*_key``) hashes what decides its result: the input tables' content columns or
bytes, and the parameters and code that dvc.yaml lists for the stage (read by avssl_core/pipeline_spec.py,
so what reruns a stage under DVC is what re-keys it under Prefect). Prefect then skips the task when a run
with the same key completed. That alone would trust outputs on disk that a later run with other inputs overwrote (data A,
then B, then A again would reuse A's record over B's files), so every run also leaves a stamp -- the key
and a digest of the outputs it left -- and a cached result is used only while the outputs on disk still
match the stamp of the same key (``is_fresh``); otherwise the task runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from avssl_core.config import Config
from avssl_core.errors import DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.orchestration.fingerprints import combine, file_sha256, section_digest, table_digest
from avssl_core.pipeline_spec import StageSpec, code_digest, stage_spec


def _code_and_params(cfg: Config, spec: StageSpec) -> dict[str, str]:
    """The key parts dvc.yaml decides: the stage's code deps and its tracked parameters, as this run has them."""
    return {"code": code_digest(*spec.code), "params": section_digest(cfg, *spec.params)}


def validate_key(cfg: Config) -> str | None:
    manifest = Path(cfg.paths.acquired_dir) / "manifest.csv"
    try:
        data = table_digest(manifest)
    except DataError:
        return None
    return combine("validate", manifest=data, **_code_and_params(cfg, stage_spec("validate")))


def segment_key(cfg: Config) -> str | None:
    valid = Path(cfg.paths.validated_dir) / "valid.csv"
    try:
        data = table_digest(valid)
    except DataError:
        return None
    return combine("segment", valid=data, **_code_and_params(cfg, stage_spec("segment")))


def pretrain_key(cfg: Config, method: str, preset: str) -> str | None:
    """Tracked parameters per method (pretrain.hparams.<method>), so another method's change keeps this key."""
    index = Path(cfg.paths.clips_dir) / "index.csv"
    if not index.is_file():
        return None
    return combine("pretrain", index=file_sha256(index), method=method, preset=preset,
                   **_code_and_params(cfg, stage_spec("pretrain", method)))


def evaluate_key(cfg: Config, method: str) -> str | None:
    model = Path(cfg.evaluate.methods_dir) / method / "model.pt"
    index = Path(cfg.paths.clips_dir) / "index.csv"
    if not model.is_file() or not index.is_file():
        return None
    return combine("evaluate", model=file_sha256(model), index=file_sha256(index), method=method,
                   **_code_and_params(cfg, stage_spec("evaluate", method)))


def stage_outputs(cfg: Config, stage: str, method: str | None = None) -> list[Path]:
    """The files whose bytes stand for a stage's outputs (the tables and models later stages read)."""
    p = cfg.paths
    return {
        "validate": [Path(p.validated_dir) / "valid.csv", Path(p.validated_dir) / "quarantine.csv"],
        "segment": [Path(p.clips_dir) / "index.csv"],
        "pretrain": [Path(cfg.pretrain.out_dir) / str(method) / "model.pt",
                     Path(p.metrics_dir) / f"pretrain_{method}.json"],
        "evaluate": [Path(p.metrics_dir) / f"{method}.json"],
    }[stage]


def outputs_digest(outputs: list[Path]) -> str | None:
    if not all(path.is_file() for path in outputs):
        return None
    return hashlib.sha256("".join(file_sha256(path) for path in outputs).encode()).hexdigest()


def stamp_dir() -> Path:
    """Beside Prefect's own result storage, so stamps live exactly as long as the records they vouch for."""
    from prefect.settings import PREFECT_HOME

    return Path(os.environ.get("AVSSL_FLOW_STAMPS") or Path(PREFECT_HOME.value()) / "avssl-stamps")


def _stamp_path(outputs: list[Path]) -> Path:
    where = str(outputs[0].resolve())
    return stamp_dir() / f"{hashlib.sha256(where.encode()).hexdigest()[:24]}.json"


def is_fresh(key: str | None, outputs: list[Path]) -> bool:
    """True when the outputs on disk are still what the last run under ``key`` left there."""
    if key is None:
        return False
    path = _stamp_path(outputs)
    if not path.is_file():
        return False
    try:
        stamp = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    return stamp.get("key") == key and stamp.get("outputs") == outputs_digest(outputs)


def write_stamp(key: str | None, outputs: list[Path]) -> None:
    digest = outputs_digest(outputs)
    if key is None or digest is None:
        return
    write_json_atomic(_stamp_path(outputs), {"key": key, "outputs": digest,
                                             "files": [str(p.resolve()) for p in outputs]})
