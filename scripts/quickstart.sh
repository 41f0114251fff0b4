#!/usr/bin/env bash
# A fresh machine to results in one command: install everything, then run the main job (`dvc repro`) on
# the built-in synthetic data, and say where everything landed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
started=$(date +%s)
dvc repro
echo
echo "== avssl: main job done in $(( $(date +%s) - started )) s =="
python - <<'PY'
import json
acq, val, seg = (json.load(open(f"metrics/{name}.json")) for name in ("acquire", "validate", "segment"))
print(f"acquire : {acq['num_files']} files from '{acq['source']}', {acq['total_duration_s']:.0f} s of video"
      f" ({acq['seconds']} s)")
print(f"validate: {val['valid']} valid, {val['quarantined']} quarantined ({val['seconds']} s)")
print(f"segment : {seg['num_clips']} clips of {seg['clip_seconds']} s from {seg['num_videos']} videos"
      f" ({seg['seconds']} s)")
import csv
# Downstream intervals are over source videos of the evaluation split: say how many there are.
videos = {}
with open(seg["index"]) as f:
    for row in csv.DictReader(f):
        videos.setdefault(row["split"], set()).add(row["video_id"])
print("splits  : " + ", ".join(f"{name} {len(ids)} videos" for name, ids in sorted(videos.items())))
import glob
for path in sorted(glob.glob("metrics/pretrain_*.json")):
    pre = json.load(open(path))
    acc = ", ".join(f"{k} {v:.1%}" for k, v in pre["pretext_accuracy"].items())
    chance = pre.get("protocol", {}).get("chance", 0.5)
    print(f"pretrain: {pre['method']}/{pre['preset']}: held-out pretext accuracy {acc} (chance {chance:.1%}),"
          f" {pre['steps']} steps ({pre['seconds']} s) -> {pre['model']}")
for path in sorted(glob.glob("metrics/pretrain_*.json")):
    method = json.load(open(path))["method"]
    try:
        ev = json.load(open(f"metrics/{method}.json"))
    except FileNotFoundError:
        continue
    shown = []
    for task, key in (("pretext_easy", "accuracy"), ("audio_probe", "accuracy"), ("action_recognition", "video@1"),
                      ("retrieval_video", "R@1")):
        entry = ev["tasks"].get(task)
        if entry and key in entry.get("pretrained", {}):
            scratch = entry.get("scratch", {}).get(key)
            shown.append(f"{task} {entry['pretrained'][key]:.2f}" + (f" (scratch {scratch:.2f})" if scratch is not None else ""))
    print(f"evaluate: {method}: " + ", ".join(shown) + f" ({ev.get('seconds')} s)")
    # The frozen probes, pretrained vs scratch with 95% intervals over test videos; the verdict comes from
    # the paired difference's interval only.
    for task in ("frozen_video", "frozen_audio"):
        for metric, rec in (ev["tasks"].get(task) or {}).get("intervals", {}).items():
            ci = lambda r: f"{r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"  # noqa: E731
            if "scratch" in rec:
                d = rec["difference"]
                trivial = f", trivial baseline {ci(rec['trivial'])}" if "trivial" in rec else ""
                print(f"  {task} {metric}: {ci(rec['pretrained'])} vs scratch {ci(rec['scratch'])}, difference "
                      f"{d['value']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]: {rec['verdict']}{trivial}")
            else:
                print(f"  {task} {metric}: {ci(rec['pretrained'])} (no scratch run)")
PY
echo "All metrics: dvc metrics show"
cat <<MSG

Clip index:        data/clips/index.csv   (clips: data/clips/<video_id>/<clip_id>.mp4 + .wav)
Valid sources:     data/validated/valid.csv
Quarantined files: data/validated/quarantine.csv (each with its reasons)
Data Docs (GX):    data/validated/datadocs/index.html
Pretrained models: data/pretrain/<method>/model.pt  (loss curves: dvc plots show)
Evaluation:        metrics/<method>.json, pictures under data/evaluate/<method>/
THE REPORT:        dashboards/report/index.html  (and dashboards/report/leaderboard.md)
Version it:        dvc push   (default remote: ~/.cache/avssl/dvc-remote; see README)
MSG
