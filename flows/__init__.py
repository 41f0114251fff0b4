"""Prefect flows for avssl: each task calls the stage function the CLI and dvc.yaml call
(avssl_core.stages.*.run_*), adding retries, content-hash caching, artifacts and DVC versioning."""
