"""Segmentation throughput (clip-seconds per second): our PyAV transcoder next to the ffmpeg command line.

Both do the same work on the same input in the same run: decode, constant frame rate, scale to the short
side (area filter), yuv420p, libx264 with the same crf/preset/keyint/threads and no B-frames, faststart
mp4 per clip, and audio resampled to PCM s16 WAV per clip. The ffmpeg side is the fastest fair equivalent
we know: ONE process decoding once and writing both clip series through the segment muxer (it does not
drop the short tail and cuts audio at packet boundaries, so it does slightly more and less exact work).

Ours is timed in-process around ``segment_video`` (the stage's per-video work, as a worker runs it;
interpreter start-up and imports are paid once per worker, not per video). ffmpeg is timed around the
subprocess. After one untimed round, rounds alternate which side runs first; the median of ``--repeats``
is reported, with CPU seconds. On a busy machine both sides slow down together, but prefer a quiet one.

    .venv/bin/python benchmarks/bench_segment.py                      # 60 s 640x360 testsrc2, generated
    .venv/bin/python benchmarks/bench_segment.py --input ../shared/media/bigbuckbunny.mp4 --clip-seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from avssl_core.config import SegmentConfig
from avssl_core.data.clip_writers import output_size
from avssl_core.data.transcode import SegmentParams, segment_video


def ffmpeg_command(
    ffmpeg: str, src: Path, out_dir: Path, p: SegmentParams, width: int, height: int, channels: int
) -> list[str]:
    """The ffmpeg equivalent of segment_video for these parameters."""
    seg = ["-f", "segment", "-segment_time", f"{p.clip_seconds:g}", "-reset_timestamps", "1"]
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
        "-map", "0:v:0", "-vf", f"fps={p.fps},scale={width}:{height}:flags=area,format=yuv420p",
        "-c:v", "libx264", "-crf", str(p.crf), "-preset", p.preset, "-g", str(p.keyframe_interval),
        "-keyint_min", str(p.keyframe_interval), "-sc_threshold", "0", "-bf", "0", "-threads", str(p.threads),
        *seg, "-segment_format_options", "movflags=+faststart", str(out_dir / "%05d.mp4"),
        "-map", "0:a:0", "-ac", str(channels), "-ar", str(p.sample_rate), "-c:a", "pcm_s16le",
        *seg, str(out_dir / "%05d.wav"),
    ]  # fmt: skip


def run_ours(src: Path, out_dir: Path, p: SegmentParams) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = segment_video(src, out_dir, "bench", p)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "clips": len(result.clips),
    }


def run_ffmpeg(cmd: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "clips": len(list(Path(cmd[-1]).parent.glob("*.mp4")))}


def probe(src: Path) -> dict:
    with av.open(str(src)) as c:
        v, a = c.streams.best("video"), c.streams.best("audio")
        return {
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "sar": v.codec_context.sample_aspect_ratio,
            "fps": float(v.average_rate or 0),
            "duration_s": (c.duration or 0) / 1e6,
            "audio_channels": a.codec_context.channels,
            "audio_rate": a.codec_context.sample_rate,
            "video_codec": v.codec_context.name,
        }


def main(argv: list[str] | None = None) -> int:
    d = SegmentConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, help="source video (default: generated 640x360 testsrc2)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated input")
    parser.add_argument("--clip-seconds", type=float, default=d.clip_seconds)
    parser.add_argument("--fps", type=int, default=d.fps)
    parser.add_argument("--short-side", type=int, default=d.short_side)
    parser.add_argument("--sample-rate", type=int, default=d.sample_rate)
    parser.add_argument("--keyframe-interval", type=int, default=d.keyframe_interval)
    parser.add_argument("--crf", type=int, default=d.crf)
    parser.add_argument("--preset", default=d.preset)
    parser.add_argument("--threads", type=int, default=d.threads, help="x264 threads, both sides")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ffmpeg", default=shutil.which("ffmpeg") or "/usr/bin/ffmpeg")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    if args.input is None:
        from bench_media import cached_test_video

        args.input = cached_test_video(args.seconds)
    p = SegmentParams(
        clip_seconds=args.clip_seconds,
        fps=args.fps,
        short_side=args.short_side,
        sample_rate=args.sample_rate,
        keyframe_interval=args.keyframe_interval,
        crf=args.crf,
        preset=args.preset,
        threads=args.threads,
    )
    info = probe(args.input)
    width, height = output_size(info["width"], info["height"], p.short_side, info["sar"] or None)
    channels = 1 if info["audio_channels"] == 1 else 2

    runs = {"ours": [], "ffmpeg": []}
    with tempfile.TemporaryDirectory(prefix="avssl-bench-") as tmp:
        # One untimed round first (page cache, library loading); then alternate which side goes first.
        for r in range(-1, args.repeats):
            ours_dir, ff_dir = Path(tmp, f"ours{r}"), Path(tmp, f"ffmpeg{r}")
            ff_dir.mkdir()
            cmd = ffmpeg_command(args.ffmpeg, args.input, ff_dir, p, width, height, channels)
            for side in ("ours", "ffmpeg") if r % 2 == 0 else ("ffmpeg", "ours"):
                result = run_ours(args.input, ours_dir, p) if side == "ours" else run_ffmpeg(cmd)
                if r >= 0:
                    runs[side].append(result)
            shutil.rmtree(ours_dir), shutil.rmtree(ff_dir)

    clip_s = runs["ours"][0]["clips"] * p.clip_seconds  # the same work measure for both sides
    report = {
        "input": str(args.input),
        "source": info,
        "output": {"width": width, "height": height, "channels": channels},
        "params": p.params_key() | {"threads": p.threads},
        "ffmpeg_command": shlex.join(cmd).replace(str(ff_dir), "OUT"),
        "clips": runs["ours"][0]["clips"],
        "clip_seconds_total": clip_s,
        "repeats": args.repeats,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "pyav": av.__version__,
            "loadavg_1min": os.getloadavg()[0],
        },
    }
    for side in ("ours", "ffmpeg"):
        seconds = statistics.median(x["seconds"] for x in runs[side])
        report[side] = {
            "median_seconds": round(seconds, 3),
            "clip_seconds_per_second": round(clip_s / seconds, 1),
            "median_cpu_seconds": round(statistics.median(x["cpu_seconds"] for x in runs[side]), 3),
        }
    report["speed_ratio_ours_over_ffmpeg"] = round(
        report["ffmpeg"]["median_seconds"] / report["ours"]["median_seconds"], 3
    )

    print(
        f"input: {args.input} ({info['width']}x{info['height']} {info['fps']:g} fps {info['video_codec']}, "
        f"{info['duration_s']:.1f} s, audio {info['audio_channels']} ch {info['audio_rate']} Hz)"
    )
    print(
        f"output: {report['clips']} clips of {p.clip_seconds:g} s, {width}x{height} {p.fps} fps, "
        f"crf {p.crf} {p.preset} keyint {p.keyframe_interval} x264 threads {p.threads}, "
        f"{channels} ch {p.sample_rate} Hz WAV"
    )
    print(f"ffmpeg: {report['ffmpeg_command']}")
    for side in ("ours", "ffmpeg"):
        r = report[side]
        print(
            f"{side:>6}: {r['median_seconds']:.3f} s median of {args.repeats}  "
            f"{r['clip_seconds_per_second']:.1f} clip-s/s  cpu {r['median_cpu_seconds']:.2f} s"
        )
    print(f"speed ours/ffmpeg: {report['speed_ratio_ours_over_ffmpeg']:.2f}x  (target >= 0.8x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
