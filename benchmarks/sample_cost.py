"""Where one training sample's CPU time goes, for each method's preset, on the project's clips.

    .venv/bin/python benchmarks/sample_cost.py --preset tiny --samples 200      # from the project root

For each method it builds the training set exactly as `avssl pretrain` does (``prepare_pretraining``:
params.yaml and ``--set`` apply) and makes ``--samples`` items in the trainer's visiting order (epoch 0's
permutation), on one thread, timing each part with this process's CPU time:
  video_store    copying the recipe's frames out of the frame store (segment.frame_store; 0 without it)
  video_open     opening a clip's decoder (torchcodec; with seek_mode "exact" this scans the file)
  video_decode   decoding the recipe's frames once the decoder is open
  audio_read     reading the window's samples from the WAV
  audio_resample downmix and resampling to the method's rate (read_audio_window less the read)
  preprocess     the method's training preprocess (crops, resize, flips, spectrograms, normalisation)
Opening happens inside the reader, so it is timed by opening the clip's decoder ahead of the read whenever
the reader does not hold it yet; the frames and samples are those the dataset returns. The mp4 is opened and
decoded only for clips the frame store lacks (all of them with ``--set segment.frame_store=false``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import torch

from avssl_core.config import load_config
from avssl_core.methods.registry import METHODS
from avssl_core.pretext import decode
from avssl_core.pretext.epoch_order import epoch_permutation
from avssl_core.stages.pretrain import prepare_pretraining

PARTS = ("video_store", "video_open", "video_decode", "audio_read", "audio_resample", "preprocess")


def profile(cfg, name: str, preset: str, samples: int) -> dict:
    run = prepare_pretraining(cfg, name, preset)
    dataset = run.train_set
    reader = dataset.frames
    index, spec = dataset.sampler.index, dataset.spec
    order = epoch_permutation(len(dataset), dataset.sampler.seed, 0)
    order = [int(order[k % len(order)]) for k in range(samples)]
    spent: dict[str, float] = defaultdict(float)
    opens = 0
    for i in order:
        recipe = dataset.sampler.recipe(0, i)
        path = str(index.video_path[recipe.video_row])
        started = time.process_time()
        stored = dataset._stored_frames(recipe)
        spent["video_store"] += time.process_time() - started
        if stored is None:
            if path not in reader._decoders:
                started = time.process_time()
                reader._decoder(path)
                spent["video_open"] += time.process_time() - started
                opens += 1
            started = time.process_time()
            reader.read(path, recipe.frame_indices)
            spent["video_decode"] += time.process_time() - started
        c = recipe.audio_row
        started = time.process_time()
        decode.read_wav_window(str(index.audio_path[c]), recipe.audio_start_sample, recipe.audio_num_samples)
        read_s = time.process_time() - started
        spent["audio_read"] += read_s
        clip_rate = int(index.sample_rate[c])
        target_rate = spec.audio_sample_rate or clip_rate
        started = time.process_time()
        decode.read_audio_window(str(index.audio_path[c]), recipe.audio_start_sample, recipe.audio_num_samples,
                                 channels=spec.audio_channels, clip_rate=clip_rate, target_rate=target_rate,
                                 target_len=round(spec.audio_seconds * target_rate))
        spent["audio_resample"] += max(0.0, time.process_time() - started - read_s)
        sample = dataset.raw_sample(recipe)
        started = time.process_time()
        if dataset.preprocess is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                dataset.preprocess(sample)
        spent["preprocess"] += time.process_time() - started
    total = sum(spent[p] for p in PARTS)
    return {"method": name, "preset": preset, "samples": samples, "clips": len(index),
            "decoder_opens": opens, "frames_per_sample": len(recipe.frame_indices),
            "ms_per_sample": round(1000 * total / samples, 3),
            **{f"{p}_ms": round(1000 * spent[p] / samples, 3) for p in PARTS},
            **{f"{p}_share": round(spent[p] / total, 3) for p in PARTS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.params, args.set)
    for name in args.methods:
        print(json.dumps(profile(cfg, name, args.preset, args.samples)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
