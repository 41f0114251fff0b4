"""Optuna ablations: the studies (one per paper table), the trial objective, storages and workers.
The stage function is avssl_core.stages.ablate.run_ablate."""
