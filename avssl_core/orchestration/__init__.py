"""Orchestration helpers for the Prefect flows in flows/: content-hash cache keys, retry conditions,
artifact builders, DVC versioning, promotion of retrained models, parameter checks. Nothing here needs
a Prefect server, so all of it is tested directly."""
