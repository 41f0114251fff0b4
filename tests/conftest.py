"""Shared test fixtures: the real clip from ../shared and a folder of crafted good and broken media."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from media_factory import write_zoo

REPO_ROOT = Path(__file__).resolve().parents[1]
# The project's shared material sits beside the checkout (../shared); AVSSL_SHARED_DIR points elsewhere.
SHARED_DIR = Path(os.environ.get("AVSSL_SHARED_DIR", REPO_ROOT.parent / "shared"))
BIGBUCKBUNNY = SHARED_DIR / "media" / "bigbuckbunny.mp4"


@pytest.fixture(autouse=True)
def restore_process_state():
    """Every test starts from the same process state and leaves it so, whatever ran before it (the suite
    runs in random order, pytest-randomly): one torch thread (two CPU cores are shared by several test runs,
    and model tests with a thread each keep them from thrashing; in-process weights compared with those of
    subprocesses run with OMP_NUM_THREADS=1 need it too), and afterwards the environment variables, the
    working directory and the root logger (the CLI's logging.basicConfig adds a handler) as they were."""
    import torch

    threads = torch.get_num_threads()
    environ = dict(os.environ)
    cwd = os.getcwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    os.chdir(cwd)
    for handler in root.handlers:
        # pytest's own capture handlers come and go with each test phase; they are not the test's.
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    """Real H.264/AAC 5.1 media; shared by every checkout at ../shared, never copied into the repo."""
    if not BIGBUCKBUNNY.is_file():
        pytest.fail(f"{BIGBUCKBUNNY} is missing: the tests need ../shared/media/bigbuckbunny.mp4 beside the repo "
                    "(or AVSSL_SHARED_DIR set to the shared folder)")
    return BIGBUCKBUNNY


@pytest.fixture(scope="session")
def media_zoo(tmp_path_factory) -> dict[str, Path]:
    """Every crafted file (see media_factory.write_zoo), written once per test session.

    The files lie under ``media_zoo["root"]``; link targets under ``media_zoo["outside"]``.
    """
    base = tmp_path_factory.mktemp("media")
    files = write_zoo(base / "root", base / "outside")
    return {**files, "root": base / "root", "outside": base / "outside"}


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory) -> Path:
    """index.csv of real segmented clips from the synthetic world: 8 videos (one per class) of 6 s at
    64x64, cut into 3 s clips (16 clips, 16 kHz stereo WAV + H.264 mp4), via the real data stages."""
    from avssl_core.config import load_config
    from avssl_core.stages.acquire import run_acquire
    from avssl_core.stages.segment import run_segment
    from avssl_core.stages.validate import run_validate

    root = tmp_path_factory.mktemp("tiny_clips")
    cfg = load_config(None, [
        f"paths.raw_dir={root / 'raw'}", f"paths.acquired_dir={root / 'acquired'}",
        f"paths.validated_dir={root / 'validated'}", f"paths.clips_dir={root / 'clips'}",
        f"paths.metrics_dir={root / 'metrics'}",
        "synth.num_videos=8", "synth.duration_s=6.0", "synth.width=64", "synth.height=64",
        "synth.workers=1", "acquire.workers=1", "validate.workers=1", "segment.workers=1",
        "segment.clip_seconds=3.0", "segment.short_side=64",
        # One video per class puts every video in train (the early split check asks to say so).
        "pretrain.val_split=train", "evaluate.split=train",
    ])
    run_acquire(cfg)
    run_validate(cfg)
    run_segment(cfg)
    return root / "clips" / "index.csv"
