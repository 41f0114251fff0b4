"""Preprocessing: what turns decoded clips into encoder inputs (audio features, video crops and their
normalisation, CMAC's SpecAugment).

Kept apart from ``models/`` (as pytorchvideo and lightly keep their transforms apart from their networks):
these run in DataLoader workers, hold no learned weights, and are chosen per method by ``methods/``, while
``models/`` holds only the networks.
"""
