"""Pretraining methods: one file each, registered in METHODS (see avssl_core/methods/registry.py)."""
