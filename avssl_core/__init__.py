"""avssl: reproducible self-supervised audio-visual representation learning."""

__version__ = "0.1.0"
