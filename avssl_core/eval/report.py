"""The leaderboard: every method's downstream numbers side by side with its scratch baseline, as
Markdown and as one static HTML page with the pictures beside it.

Inputs are the DVC metric files: ``metrics/<method>.json`` (evaluation; schema in the helpers' brief:
method, preset, data, seconds, tasks{task: {dataset, protocol, pretrained, scratch, skipped, ...}},
pictures{name: path}) and ``metrics/pretrain_<method>.json`` (pretext accuracy on held-out pairs),
plus the pretraining loss curves (``<pretrain.out_dir>/<method>/plots/loss.csv``) when present.

Every number is printed with the method's preset, the data it was computed on and the protocol of its
task (protocols are long, so tables refer to them by number and list them below). Inside a task entry,
``pretrained`` and ``scratch`` are the two weights a method is run with; any other key holding a flat
dict of numbers (e.g. localisation's ``centre_prior``) is a baseline and gets a row of its own; a key
holding a dict with its own ``pretrained`` (localisation's ``single_source`` / ``multi_source``) is a
sub-result with its own table.

Pretrained against scratch: a task entry's ``intervals`` ({metric: record of avssl_core/eval/intervals.py's
``compare``}) carry 95% bootstrap intervals over test source videos; the report prints them beside the
numbers and calls a win or a loss only from the interval of the paired difference. A task without
intervals is listed as "no interval": its difference is printed, but no win or loss is called.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avssl_core.errors import DataError
from avssl_core.io_utils import write_text_atomic
from avssl_core.methods.registry import METHODS

# The agreed task names, in the order the report shows them; unknown tasks follow, sorted.
TASK_ORDER = ("frozen_video", "frozen_audio", "pretext_easy", "pretext_easy75_hard25", "pretext_shifted",
              "pretext_instance", "action_recognition", "audio_probe", "retrieval_video", "retrieval_cross",
              "localization")
TASK_TITLES = {
    "frozen_video": "Frozen video encoder: kNN and linear probes",
    "frozen_audio": "Frozen audio encoder: kNN and linear probes",
    "pretext_easy": "Pretext accuracy, easy negatives",
    "pretext_easy75_hard25": "Pretext accuracy, 75% easy / 25% hard negatives",
    "pretext_shifted": "Pretext accuracy, shifted-audio negatives",
    "pretext_instance": "Pretext accuracy, instance discrimination (contrastive methods)",
    "action_recognition": "Action recognition (video encoder)",
    "audio_probe": "Audio classification, linear probe (audio encoder)",
    "retrieval_video": "Video retrieval",
    "retrieval_cross": "Cross-modal and within-modality retrieval",
    "localization": "Sound-source localisation",
}
WEIGHTS = ("pretrained", "scratch")
_ENTRY_KEYS = {"dataset", "protocol", "skipped", "overlays", "samples", "intervals"}
NO_INTERVAL = "no interval"


def fmt(value: Any) -> str:
    """How a number is printed everywhere in the report (tests look for exactly this)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def fmt_interval(record: dict | None, signed: bool = False) -> str:
    """``value [low, high]`` of an interval record ({"value", "low", "high"})."""
    if not record:
        return "–"
    show = (lambda v: f"{v:+.3f}") if signed else fmt  # noqa: E731
    return f"{show(record['value'])} [{show(record['low'])}, {show(record['high'])}]"


# -- reading -----------------------------------------------------------------------------------------


@dataclass
class Inputs:
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> metrics/<method>.json
    pretraining: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> metrics/pretrain_<m>.json
    files: dict[str, Path] = field(default_factory=dict)  # method -> its evaluation file
    missing: list[str] = field(default_factory=list)  # expected methods without an evaluation file


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read metrics: {exc}") from exc


def load_inputs(metrics_dir: Path, expected: Sequence[str] | None = None) -> Inputs:
    """Every evaluation file in ``metrics_dir`` (an expected method's name, or any JSON with ``tasks``)
    and every pretraining file; an expected method's evaluation file must follow the schema. Expected:
    the registry's methods unless given."""
    expected = list(METHODS) if expected is None else expected
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise DataError(f"{metrics_dir}: no metrics folder (run `avssl evaluate` first)")
    out = Inputs()
    for path in sorted(metrics_dir.glob("*.json")):
        name = path.stem
        if name.startswith("pretrain_"):
            data = read_json(path)
            if isinstance(data, dict):
                out.pretraining[name.removeprefix("pretrain_")] = data
            continue
        if name in expected:
            data = read_json(path)
            _check_evaluation(path, data)
        else:
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # not ours to judge: stage metrics (acquire.json, ...) and others
            if not (isinstance(data, dict) and isinstance(data.get("tasks"), dict) and "method" in data):
                continue
            _check_evaluation(path, data)
        out.evaluations[str(data["method"])] = data
        out.files[str(data["method"])] = path
    out.missing = [m for m in expected if m not in out.evaluations]
    return out


def _check_evaluation(path: Path, data: Any) -> None:
    if not isinstance(data, dict):
        raise DataError(f"{path}: an evaluation file must hold a JSON object")
    for key in ("method", "preset", "data", "tasks"):
        if key not in data:
            raise DataError(f"{path}: missing {key!r} (expected keys: method, preset, data, seconds, tasks, "
                            "pictures)")
    if not isinstance(data["tasks"], dict):
        raise DataError(f"{path}: 'tasks' must map task names to entries")
    for task, entry in data["tasks"].items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: task {task!r} must be an object")
        for weights in WEIGHTS:
            if weights in entry and not isinstance(entry[weights], dict):
                raise DataError(f"{path}: tasks.{task}.{weights} must map metric names to numbers")


# -- tables ------------------------------------------------------------------------------------------


@dataclass
class Row:
    method: str
    preset: str
    system: str  # pretrained | scratch | a baseline's name
    values: dict[str, Any]
    data: str
    protocol: int  # number in the protocol list
    skipped: Any = None
    samples: Any = None
    intervals: dict[str, dict] = field(default_factory=dict)  # metric -> {"value", "low", "high"}


@dataclass
class Table:
    key: str  # task or task/sub-result
    title: str
    metrics: list[str]
    rows: list[Row]


def _is_numbers(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(v, (int, float)) or v is None for v in value.values())


def build_tables(evaluations: dict[str, dict[str, Any]]) -> tuple[list[Table], list[tuple[int, str, str, str]]]:
    """One table per task (and per sub-result), and the numbered protocols (number, method, task, text)."""
    protocols: list[tuple[int, str, str, str]] = []
    tables: dict[str, Table] = {}
    tasks = {t for e in evaluations.values() for t in e["tasks"]}
    ordered = [t for t in TASK_ORDER if t in tasks] + sorted(tasks - set(TASK_ORDER))
    for task in ordered:
        for method in sorted(evaluations, key=_method_order):
            ev = evaluations[method]
            entry = ev["tasks"].get(task)
            if entry is None:
                continue
            number = len(protocols) + 1
            protocols.append((number, method, task, f"{entry.get('protocol', '(not stated)')}"))
            dataset = str(entry.get("dataset") or ev.get("data", ""))
            groups = [(task, TASK_TITLES.get(task, task), entry)]
            groups += [(f"{task}/{k}", f"{TASK_TITLES.get(task, task)}: {k.replace('_', ' ')}", v)
                       for k, v in entry.items() if isinstance(v, dict) and "pretrained" in v]
            for key, title, group in groups:
                table = tables.setdefault(key, Table(key, title, [], []))
                systems = [w for w in WEIGHTS if w in group] + sorted(
                    k for k, v in group.items() if k not in WEIGHTS and k not in _ENTRY_KEYS and _is_numbers(v))
                for system in systems:
                    values = group[system]
                    for metric in values:
                        if metric not in table.metrics:
                            table.metrics.append(metric)
                    intervals = {m: rec[system] for m, rec in (group.get("intervals") or {}).items()
                                 if isinstance(rec, dict) and system in rec}
                    table.rows.append(Row(method, str(ev.get("preset", "")), system, values, dataset, number,
                                          group.get("skipped", entry.get("skipped")), group.get("samples"),
                                          intervals))
    return list(tables.values()), protocols


def _method_order(method: str) -> tuple[int, str]:
    """The registry's order first, then any other method by name."""
    known = list(METHODS)
    return (known.index(method) if method in known else len(known), method)


COMPARISON_HEADER = ["method", "task", "metric", "pretrained [95% CI]", "scratch [95% CI]",
                     "pretrained - scratch [95% CI, paired]", "verdict", "trivial baseline [95% CI]",
                     "test videos / items"]


def comparison_rows(evaluations: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Pretrained against scratch, one row per metric with intervals, and one row per task without them
    (its first metric), whose verdict is "no interval": a difference without an interval calls nothing. The
trivial baseline (probes on raw input statistics) is shown where the task has one."""
    rows = []
    tasks = {t for e in evaluations.values() for t in e["tasks"]}
    ordered = [t for t in TASK_ORDER if t in tasks] + sorted(tasks - set(TASK_ORDER))
    for task in ordered:
        for method in sorted(evaluations, key=_method_order):
            entry = evaluations[method]["tasks"].get(task)
            if not entry or not _is_numbers(entry.get("pretrained")):
                continue
            title = TASK_TITLES.get(task, task)
            intervals = entry.get("intervals") or {}
            for metric, rec in intervals.items():
                groups = f"{fmt(rec.get('test_groups'))} / {fmt(rec.get('test_items'))}"
                rows.append([method, title, metric, fmt_interval(rec.get("pretrained")),
                             fmt_interval(rec.get("scratch")), fmt_interval(rec.get("difference"), signed=True),
                             rec.get("verdict", "no scratch run"), fmt_interval(rec.get("trivial")), groups])
            if intervals or not _is_numbers(entry.get("scratch")):
                continue
            metric = next(iter(entry["pretrained"]))
            p, sc = entry["pretrained"].get(metric), entry["scratch"].get(metric)
            diff = f"{p - sc:+.3f}" if isinstance(p, (int, float)) and isinstance(sc, (int, float)) else "–"
            rows.append([method, title, metric, fmt(p), fmt(sc), diff, NO_INTERVAL, "–", "–"])
    return rows


_COMPARISON_TEXT = ("Pretrained against scratch. Intervals: 95% percentile bootstrap over test source videos "
                    "(all clips of a video resampled together); the difference's interval is paired (both models "
                    "on the same resampled videos). A win or a loss is called only when that interval excludes "
                    "zero; otherwise \"not separable\". Tasks whose per-item results are not kept say \"no "
                    "interval\": their difference calls nothing.")


PRETEXT_PROTOCOLS = ("easy", "easy75_hard25", "shifted")


def pretraining_rows(pretraining: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pretraining table (pretext accuracy on held-out pairs, training effort)."""
    protocols = [p for p in PRETEXT_PROTOCOLS if any(p in (d.get("pretext_accuracy") or {})
                                                     for d in pretraining.values())]
    header = ["method", "preset", "data", "held-out pairs", "chance"] + [f"pretext acc. {p}" for p in protocols] + [
        "epochs", "steps", "final train loss", "seconds"]
    rows = []
    for method in sorted(pretraining, key=_method_order):
        d = pretraining[method]
        proto = d.get("protocol") or {}
        pairs = f"{proto.get('pairs', '?')} from split {proto.get('split', '?')}" if isinstance(proto, dict) else str(proto)
        acc = d.get("pretext_accuracy") or {}
        chance = proto.get("chance", 0.5) if isinstance(proto, dict) else 0.5
        rows.append([method, str(d.get("preset", "")), str(d.get("data", "")), pairs, fmt(chance)]
                    + [fmt(acc.get(p)) for p in protocols]
                    + [fmt(d.get("epochs")), fmt(d.get("steps")), fmt(d.get("train_loss")), fmt(d.get("seconds"))])
    return header, rows


# -- pictures ----------------------------------------------------------------------------------------


@dataclass
class Picture:
    method: str
    name: str
    rel: str | None  # path relative to the report folder; None when the source file is missing
    source: str


def _resolve(path: str, bases: Iterable[Path]) -> Path | None:
    p = Path(path)
    candidates = [p] if p.is_absolute() else [b / p for b in bases]
    return next((c for c in candidates if c.is_file()), None)


def collect_pictures(inputs: Inputs, out_dir: Path, bases: Sequence[Path]) -> list[Picture]:
    """Copy every picture the evaluation files name (``pictures`` and localisation ``overlays``) to
    ``out_dir/img/<method>/``."""
    pictures = []
    for method in sorted(inputs.evaluations, key=_method_order):
        ev = inputs.evaluations[method]
        named = [(str(k), str(v)) for k, v in (ev.get("pictures") or {}).items()]
        for task, entry in ev["tasks"].items():
            named += [(f"{task}: {Path(str(p)).stem}", str(p)) for p in entry.get("overlays") or []]
        used: set[str] = set()
        for name, source in named:
            found = _resolve(source, bases)
            if found is None:
                pictures.append(Picture(method, name, None, source))
                continue
            target = _unique(f"{method}/{found.name}", used)
            dest = out_dir / "img" / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, dest)
            pictures.append(Picture(method, name, f"img/{target}", source))
    return pictures


def _unique(rel: str, used: set[str]) -> str:
    stem, dot, ext = rel.rpartition(".")
    candidate, k = rel, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}{dot}{ext}"
    used.add(candidate)
    return candidate


def loss_curve_picture(loss_csv: Path, out_png: Path, title: str) -> Path | None:
    """The pretraining loss per step (plots/loss.csv: step, loss), or None when there is no curve."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        frame = pd.read_csv(loss_csv)
    except (OSError, ValueError):
        return None
    if not {"step", "loss"} <= set(frame.columns) or frame.empty:
        return None
    fig = Figure(figsize=(5.0, 3.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(frame["step"], frame["loss"], linewidth=1.0)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png")
    return out_png


# -- writing -----------------------------------------------------------------------------------------


def _table_cells(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["method", "preset", "weights"] + table.metrics + ["samples", "skipped", "data", "protocol"]
    rows = [[r.method, r.preset, r.system] + [fmt_interval(r.intervals[m]) if m in r.intervals
                                              else fmt(r.values.get(m)) for m in table.metrics]
            + [fmt(r.samples), fmt(r.skipped), r.data, f"[{r.protocol}]"] for r in table.rows]
    return header, rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _methods_rows(inputs: Inputs) -> list[list[str]]:
    rows = []
    for method in sorted(inputs.evaluations, key=_method_order):
        ev = inputs.evaluations[method]
        rows.append([method, str(ev.get("preset", "")), str(ev.get("data", "")), fmt(ev.get("seconds")),
                     ", ".join(t for t in ev["tasks"]), str(inputs.files[method])])
    return rows


METHODS_HEADER = ["method", "preset", "data", "evaluation seconds", "tasks", "metrics file"]


def write_markdown(path: Path, inputs: Inputs, tables: list[Table], protocols, pretrain: tuple,
                   pictures: list[Picture], losses: dict[str, str]) -> None:
    parts = ["# avssl leaderboard", "",
             "Every method's downstream numbers with its own encoders pretrained (`pretrained`) and randomly "
             "initialised (`scratch`), side by side; other rows are baselines. Each row names its preset and "
             "data; the numbers in brackets refer to the protocols listed at the end.", ""]
    parts += ["## Methods", "", _md_table(METHODS_HEADER, _methods_rows(inputs)) if inputs.evaluations
              else "No evaluation file yet.", ""]
    parts += [_missing_text(inputs.missing), ""]
    comparison = comparison_rows(inputs.evaluations)
    if comparison:
        parts += ["## What pretraining buys", "", _COMPARISON_TEXT, "", _md_table(COMPARISON_HEADER, comparison), ""]
    if pretrain[1]:
        parts += ["## Pretraining", "", "Pretext accuracy on fixed, seeded held-out pairs (chance per method: pair classifiers 0.5, "
                  "contrastive methods 1 / candidates in a batch).", "",
                  _md_table(*pretrain), ""]
        parts += [f"![{m} loss]({rel})" for m, rel in losses.items()] + [""]
    for table in tables:
        parts += [f"## {table.title}", "", _md_table(*_table_cells(table)), ""]
    if pictures:
        parts += ["## Pictures", ""]
        for p in pictures:
            parts.append(f"- {p.method} / {p.name}: " + (f"![{p.name}]({p.rel})" if p.rel
                                                          else f"missing ({p.source})"))
        parts.append("")
    if protocols:
        parts += ["## Protocols", ""] + [f"{n}. **{m} / {t}**: {text}" for n, m, t, text in protocols] + [""]
    write_text_atomic(path, "\n".join(parts))


def _missing_text(missing: Sequence[str]) -> str:
    if not missing:
        return "Every expected method has been evaluated."
    return ("Missing: " + ", ".join(missing) + " (no metrics/<method>.json; run `avssl evaluate --method "
            "<method>`).")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.scratch td { color: #666; }
tr.baseline td { color: #666; font-style: italic; }
tr.win td { background: #e6f4e6; }
tr.loss td { background: #f8e4e4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #a00; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.8em; color: #555; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None,
                numeric: set[int] | None = None) -> str:
    e = html.escape
    numeric = numeric or set()
    out = ["<table>", "<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="num">{e(str(c))}</td>' if j in numeric else f"<td>{e(str(c))}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_html(path: Path, inputs: Inputs, tables: list[Table], protocols, pretrain: tuple,
               pictures: list[Picture], losses: dict[str, str]) -> None:
    e = html.escape
    body = ["<h1>avssl leaderboard</h1>",
            "<p>Every method's downstream numbers with its encoders pretrained and randomly initialised "
            "(scratch), side by side; grey italic rows are baselines. Each row names its preset and data; "
            "bracketed numbers refer to the protocols at the end.</p>",
            "<h2>Methods</h2>",
            _html_table(METHODS_HEADER, _methods_rows(inputs)) if inputs.evaluations else "<p>No evaluation file yet.</p>",
            f'<p class="{"missing" if inputs.missing else ""}">{e(_missing_text(inputs.missing))}</p>']
    comparison = comparison_rows(inputs.evaluations)
    if comparison:
        verdicts = [{"win": "win", "loss": "loss"}.get(row[6], "") for row in comparison]
        body += ['<h2 id="comparison">What pretraining buys</h2>', f"<p>{e(_COMPARISON_TEXT)}</p>",
                 _html_table(COMPARISON_HEADER, comparison, verdicts, numeric={3, 4, 5})]
    if pretrain[1]:
        header, rows = pretrain
        body += ["<h2>Pretraining</h2>", "<p>Pretext accuracy on fixed, seeded held-out pairs (chance per method: pair classifiers 0.5, "
                 "contrastive methods 1 / candidates in a batch).</p>",
                 _html_table(header, rows, numeric=set(range(4, len(header))))]
        body += ['<div class="gallery">'] + [
            f'<figure><img src="{e(rel)}" alt="{e(m)} loss"><figcaption>{e(m)}: pretraining loss</figcaption></figure>'
            for m, rel in losses.items()] + ["</div>"]
    for table in tables:
        header, rows = _table_cells(table)
        classes = ["" if r.system == "pretrained" else "scratch" if r.system == "scratch" else "baseline"
                   for r in table.rows]
        body += [f'<h2 id="{e(table.key)}">{e(table.title)}</h2>',
                 _html_table(header, rows, classes, numeric=set(range(3, 3 + len(table.metrics) + 2)))]
    if pictures:
        body.append("<h2>Pictures</h2>")
        for method in dict.fromkeys(p.method for p in pictures):
            body += [f"<h3>{e(method)}</h3>", '<div class="gallery">']
            for p in (p for p in pictures if p.method == method):
                if p.rel:
                    body.append(f'<figure><img src="{e(p.rel)}" alt="{e(p.name)}">'
                                f"<figcaption>{e(p.name)}</figcaption></figure>")
                else:
                    body.append(f'<p class="missing">{e(p.name)}: picture missing ({e(p.source)})</p>')
            body.append("</div>")
    if protocols:
        body += ["<h2>Protocols</h2>", "<ol>"] + [
            f"<li><b>{e(m)} / {e(t)}</b>: {e(text)}</li>" for _, m, t, text in protocols] + ["</ol>"]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>avssl leaderboard</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    write_text_atomic(path, page)


def build_report(metrics_dir: Path, out_dir: Path, *, expected: Sequence[str] | None = None,
                 pretrain_dir: Path | None = None, bases: Sequence[Path] = ()) -> dict[str, Any]:
    """Read the metric files, write ``out_dir``/leaderboard.md, index.html and img/; returns a summary.
    Relative picture paths resolve against ``bases`` (the project root first)."""
    metrics_dir, out_dir = Path(metrics_dir), Path(out_dir)
    inputs = load_inputs(metrics_dir, expected)
    if (out_dir / "img").exists():
        shutil.rmtree(out_dir / "img")  # pictures of a previous report that may no longer exist
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = collect_pictures(inputs, out_dir, [*bases, metrics_dir.parent])
    losses: dict[str, str] = {}
    if pretrain_dir is not None:
        for method in sorted(inputs.pretraining, key=_method_order):
            png = loss_curve_picture(Path(pretrain_dir) / method / "plots" / "loss.csv",
                                     out_dir / "img" / f"pretrain_{method}_loss.png", f"{method}: pretraining loss")
            if png is not None:
                losses[method] = f"img/{png.name}"
    tables, protocols = build_tables(inputs.evaluations)
    pretrain = pretraining_rows(inputs.pretraining)
    write_markdown(out_dir / "leaderboard.md", inputs, tables, protocols, pretrain, pictures, losses)
    write_html(out_dir / "index.html", inputs, tables, protocols, pretrain, pictures, losses)
    return {"report": str(out_dir / "index.html"), "leaderboard": str(out_dir / "leaderboard.md"),
            "methods": sorted(inputs.evaluations, key=_method_order), "missing": inputs.missing,
            "pretraining": sorted(inputs.pretraining, key=_method_order),
            "pictures": sum(p.rel is not None for p in pictures) + len(losses),
            "missing_pictures": [p.source for p in pictures if p.rel is None]}
