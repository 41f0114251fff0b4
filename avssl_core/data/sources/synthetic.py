"""The built-in synthetic source: generate the synthetic world (resumable) and list its videos."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avssl_core.config import SynthConfig


def list_files(cfg: SynthConfig, raw_dir: Path) -> list[dict]:
    from avssl_core.synth.generate import generate_dataset  # numpy-heavy; only when this source is used

    out_dir = Path(raw_dir) / "synthetic"
    generate_dataset(out_dir, cfg)
    index = pd.read_csv(out_dir / "index.csv", keep_default_na=False, dtype=str)
    rows = []
    for rec in index.itertuples(index=False):
        path = (out_dir / rec.path).resolve()
        rows.append(
            {
                "video_id": rec.video_id,
                "path": str(path),
                "source": "synthetic",
                "source_uri": f"synthetic://seed{cfg.seed}/{rec.video_id}",
                "source_root": str(out_dir.resolve()),
                "label": rec.label,
                "split": rec.split,
                "start_s": "",
                "end_s": "",
                "annotation_path": str((out_dir / rec.annotation_path).resolve()),
            }
        )
    return sorted(rows, key=lambda r: r["video_id"])
