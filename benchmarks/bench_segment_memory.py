"""Peak memory of segmenting ONE long video: it must not grow with the video's length.

For each length (default 10 min and 60 min) a test video is generated once (testsrc2 + tone, H.264/AAC,
cached under /tmp/avssl-bench) and segmented by ``segment_video`` in a child process, exactly as a stage
worker does it. The parent samples the child's resident set size (psutil) every ``--interval`` seconds;
the child also reports its own ru_maxrss, its RSS after imports (the baseline) and what opening the mp4
costs by itself (the demuxer's sample index, which grows with the file for any mp4 reader).

    .venv/bin/python benchmarks/bench_segment_memory.py                 # 600 s and 3600 s
    .venv/bin/python benchmarks/bench_segment_memory.py --lengths 60 600 --json memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from avssl_core.config import SegmentConfig

MIB = 1024 * 1024


def child(src: str, out_dir: str, clip_seconds: float) -> None:
    """Runs in the measured process: segment, then print one JSON line."""
    from avssl_core.data.transcode import segment_video
    from avssl_core.stages.segment import segment_params

    # The stage's defaults, with the requested clip length: what `avssl segment` would do.
    params = segment_params(SegmentConfig(clip_seconds=clip_seconds))
    import av

    me = psutil.Process()
    baseline = me.memory_info().rss
    # What merely opening the file costs: an mp4 demuxer loads the whole sample index (moov), which is
    # proportional to the file's length for any mp4 reader, ffmpeg included. Measured apart so the
    # pipeline's own working set can be told from it.
    with av.open(src):
        index_bytes = me.memory_info().rss - baseline
    t0 = time.perf_counter()
    result = segment_video(src, out_dir, "long", params)
    print(
        json.dumps(
            {
                "baseline_rss": baseline,
                "container_index_rss": index_bytes,
                "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "clips": len(result.clips),
                "seconds": time.perf_counter() - t0,
            }
        )
    )


def measure(src: Path, clip_seconds: float, interval: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="avssl-mem-") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(src), out, str(clip_seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        watched = psutil.Process(proc.pid)
        trace: list[int] = []
        while proc.poll() is None:
            try:
                trace.append(watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(interval)
        peak, samples = max(trace, default=0), len(trace)
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"segmenting {src} failed with exit code {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    # Peak of each quarter of the run: memory that grows with the video keeps climbing quarter after
    # quarter, a bounded working set levels off after the first.
    quarters = [max(trace[i * len(trace) // 4 : (i + 1) * len(trace) // 4], default=0) for i in range(4)]
    return {"sampled_peak_rss": peak, "rss_samples": samples, "peak_rss_by_quarter": quarters, **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lengths", type=float, nargs="+", default=[600.0, 3600.0], help="video lengths, seconds"
    )
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--clip-seconds", type=float, default=SegmentConfig.clip_seconds)
    parser.add_argument("--interval", type=float, default=0.05, help="RSS sampling period, seconds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("SRC", "OUT", "CLIP_SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], float(args.child[2]))
        return 0

    from bench_media import cached_test_video

    rows = []
    for length in args.lengths:
        t0 = time.perf_counter()
        src = cached_test_video(length, args.width, args.height)
        made = time.perf_counter() - t0
        print(
            f"input {length:g} s: {src} ({src.stat().st_size / MIB:.0f} MiB, ready in {made:.0f} s)",
            flush=True,
        )
        result = measure(src, args.clip_seconds, args.interval)
        rows.append({"length_s": length, "input": str(src), **result})
        print(
            f"  {result['clips']} clips in {result['seconds']:.1f} s: peak RSS {result['sampled_peak_rss'] / MIB:.1f} MiB "
            f"(sampled), ru_maxrss {result['ru_maxrss'] / MIB:.1f} MiB, after imports {result['baseline_rss'] / MIB:.1f} MiB; "
            f"opening the mp4 alone adds {result['container_index_rss'] / MIB:.1f} MiB (demuxer set-up + sample index)",
            flush=True,
        )
        quarters = " / ".join(f"{q / MIB:.1f}" for q in result["peak_rss_by_quarter"])
        print(f"  peak RSS by quarter of the run: {quarters} MiB", flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = last["ru_maxrss"] - first["ru_maxrss"]
        index_growth = last["container_index_rss"] - first["container_index_rss"]
        print(
            f"peak RSS growth from {first['length_s']:g} s to {last['length_s']:g} s: {growth / MIB:+.1f} MiB, "
            f"of which the mp4 sample index {index_growth / MIB:+.1f} MiB; "
            f"the segmenter itself {(growth - index_growth) / MIB:+.1f} MiB"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"clip_seconds": args.clip_seconds, "size": [args.width, args.height], "runs": rows}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
