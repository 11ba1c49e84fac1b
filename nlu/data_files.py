"""Training data from files: each file read by the reader its format needs, and all of them merged.

Kept apart from :mod:`nlu.training_data` (what training data is) because the
readers build on that module: Rasa YAML, the legacy Markdown and JSON, CSV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nlu import csv_data, legacy, rasa_yaml
from nlu.training_data import TrainingData, TrainingDataError


def _detect_and_read(path: Path) -> TrainingData | None:
    """Read one file, choosing the reader by extension and content; None for non-NLU files."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TrainingDataError(path, line, "file is not valid UTF-8") from None
    if suffix in (".yml", ".yaml"):
        return rasa_yaml.read_yaml(content, str(path))
    if suffix in (".md", ".markdown"):
        return legacy.read_markdown(content, str(path))
    if suffix == ".json":
        return legacy.read_json(content, str(path))
    if suffix in (".csv", ".tsv"):
        return csv_data.read_csv(content, str(path), delimiter="\t" if suffix == ".tsv" else ",")
    raise TrainingDataError(path, None, f"unknown training data format '{suffix or path.name}' (expected .yml, .md, .json or .csv)")


def _expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files named directly, plus data files found under named directories (sorted for stable order)."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in (".yml", ".yaml", ".md", ".json", ".csv"):
                    if f.name.lower() in ("readme.md", "expected.md"):
                        continue
                    files.append(f)
        elif path.exists():
            files.append(path)
        else:
            raise TrainingDataError(path, None, "no such file or directory")
    return files


def load_training_data(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> TrainingData:
    """Read and merge every NLU file given (files or directories).

    Domain, stories and rules files are skipped silently so that a whole Rasa
    project folder can be passed, as `rasa train nlu` allows.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    data = TrainingData()
    for f in _expand(list(paths)):
        part = _detect_and_read(f)
        if part is not None:
            part.sources = [str(f)]
            data = data.merge(part)
    return data
