"""Evaluation of pretrained encoders."""
