"""Read a video list CSV line by line, keeping line numbers so every error can point at its line.

Handles the shapes public lists come in: a header row (Kinetics, our own format), no header with the
column names given in params (VGGSound's ``vggsound.csv``), ``#`` comment lines and spaces after commas
(AudioSet's ``balanced_train_segments.csv``).
"""

from __future__ import annotations

import csv
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avssl_core.errors import ConfigError, DataError


@dataclass
class CsvRecord:
    line: int  # 1-based line number in the file
    values: dict[str, str]


def read_records(csv_path: Path, columns: list[str] | None = None) -> tuple[list[str], list[CsvRecord]]:
    """The column names and the data records of ``csv_path``.

    ``columns`` names the columns of a header-less file; without it the first non-comment line is the header.
    """
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: not UTF-8 text ({exc})") from exc
    lines = _data_lines(text)
    header = [c.strip() for c in columns] if columns else None
    if header is None:
        first = next(lines, None)
        if first is None:
            raise DataError(f"{csv_path}: empty file, expected a header row")
        line_no, header = first[0], [c.strip() for c in _split(csv_path, *first)]
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated or "" in header:
            raise DataError(f"{csv_path}:{line_no}: header has empty or repeated column names {duplicated}")
    records = []
    for line_no, line in lines:
        fields = _split(csv_path, line_no, line)
        if len(fields) != len(header):
            raise DataError(
                f"{csv_path}:{line_no}: {len(fields)} fields, but the header names {len(header)} columns {header}"
            )
        records.append(CsvRecord(line_no, {name: value.strip() for name, value in zip(header, fields, strict=True)}))
    return header, records


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _split(csv_path: Path, line_no: int, line: str) -> list[str]:
    # One line at a time (no quoted newlines in video lists), so a broken quote is reported at its line.
    try:
        return next(csv.reader([line], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise DataError(f"{csv_path}:{line_no}: not valid CSV ({exc})") from exc


class _TemplateValue:
    """A CSV cell that formats as a number when the template asks for one: ``{start_seconds:06d}`` on "1"
    gives "000001" and on "30.000" (AudioSet writes floats) also gives "000030"."""

    def __init__(self, text: str):
        self.text = text

    def __format__(self, spec: str) -> str:
        kind = spec[-1:] if spec else ""
        if kind in ("d", "x", "o", "b"):
            number = float(self.text)
            if not number.is_integer():
                raise ValueError(f"{self.text!r} is not a whole number, as format {spec!r} needs")
            return format(int(number), spec)
        if kind in ("f", "F", "e", "E", "g", "G", "%"):
            return format(float(self.text), spec)
        return format(self.text, spec)


def template_fields(template: str) -> set[str]:
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ConfigError(f"acquire.manifest.path_template {template!r}: {exc}") from exc


def fill_template(template: str, values: dict[str, str]) -> str:
    """``template`` with ``{column}`` replaced by that column's value in this record."""
    return template.format_map({k: _TemplateValue(v) for k, v in values.items()})
