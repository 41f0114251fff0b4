"""The same frames encode to the same H.264 bits in any process (issue 12).

Both encoders are checked: the synthetic world's (synth/encode.py) and the segment stage's clip writer
(data/clip_writers.py). Each runs in two fresh interpreters whose heaps differ: another PYTHONHASHSEED, and
in one of them glibc's MALLOC_PERTURB_, which fills new and freed heap memory with a byte, so any encoder
output that depends on uninitialised memory changes. The synthetic encoder's did, on AVX-512 CPUs, until
x264's macroblock-tree rate control was turned off (see synth/encode.py). The clip writer (no B-frames)
gave the same bits with and without that change; its case guards it against options that would break that.
On a CPU without AVX-512 both cases pass with or without the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs in a child interpreter: encode one small synthetic scene with both encoders into argv[1] and print,
# per encoder, sha256 of the mp4 bytes and of the decoded yuv420p frames. The scene (seed 0, video 6 of the
# default world, 64x64, 1 s) is one whose encoding the heap's contents changed before the fix.
CHILD = r"""
import hashlib, json, sys
from pathlib import Path
import av
from avssl_core.config import SegmentConfig, SynthConfig
from avssl_core.data.clip_writers import ClipVideoWriter
from avssl_core.synth.generate import assign_labels, video_seed, write_video
from avssl_core.synth.render import iter_frames
from avssl_core.synth.worlds import get_world

out = Path(sys.argv[1])
cfg = SynthConfig(duration_s=1.0, width=64, height=64)
seed, label = video_seed(cfg.seed, 6), assign_labels(cfg)[6]

def hashes(path):
    frames = hashlib.sha256()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.update(frame.to_ndarray(format="yuv420p").tobytes())
    return {"bytes": hashlib.sha256(path.read_bytes()).hexdigest(), "frames": frames.hexdigest()}

write_video(out / "synth.mp4", cfg, seed, label)
seg = SegmentConfig()
writer = ClipVideoWriter(out / "clip.mp4", width=64, height=64, fps=cfg.fps, crf=seg.crf, preset=seg.preset,
                         keyframe_interval=seg.keyframe_interval, threads=seg.threads)
for pixels in iter_frames(get_world(cfg.world).build_scene(cfg, seed, label)):
    writer.write(av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p"))
writer.finish()
print(json.dumps({"synth": hashes(out / "synth.mp4"), "clip": hashes(out / "clip.mp4")}))
"""

HEAPS = ({"PYTHONHASHSEED": "1"}, {"PYTHONHASHSEED": "2", "MALLOC_PERTURB_": "170"})


def _encode_in_child(out: Path, env_extra: dict[str, str]) -> dict:
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "MALLOC_PERTURB_")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(out)], env={**env, **env_extra}, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"encoder child ({env_extra}) failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("encode_reproducible")
    return [_encode_in_child(root / f"run{i}", heap) for i, heap in enumerate(HEAPS)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("encoder", ["synth", "clip"])
def test_same_frames_encode_to_same_bits_in_any_process(two_processes, encoder):
    first, second = (run[encoder] for run in two_processes)
    assert first["frames"] == second["frames"], f"{encoder}: decoded frames differ between {HEAPS}"
    assert first["bytes"] == second["bytes"], f"{encoder}: mp4 bytes differ between {HEAPS}"
