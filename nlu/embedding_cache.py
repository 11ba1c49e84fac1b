"""A disk cache of sentence vectors keyed by text and model, so a retrain embeds only new texts.

Embedding is most of the `accurate` pipeline's training time (about 8 ms a
text on one core); a bot's author edits a few examples and retrains, so
every vector is kept under the sha256 of (model id, text). Each training run
that embedded something adds one chunk file (keys and float32 vectors in a
NumPy `.npz`, read with `allow_pickle=False`), written under a temporary name
and renamed, so a crash mid-write leaves the cache as it was and two
trainings at once never write the same file. Past `MAX_CHUNKS` files the
chunks are merged into one.

Location: $DANGOL_NLU_CACHE/embeddings when set (the bot's model cache
variable), else $XDG_CACHE_HOME/dangol/nlu/embeddings (~/.cache/...).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

MAX_CHUNKS = 16
KEY_BYTES = 16


def default_cache_dir() -> Path:
    configured = os.environ.get("DANGOL_NLU_CACHE")
    if configured:
        return Path(configured) / "embeddings"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dangol" / "nlu" / "embeddings"


def text_key(model_id: str, text: str) -> bytes:
    return hashlib.sha256(model_id.encode("utf-8") + b"\0" + text.encode("utf-8")).digest()[:KEY_BYTES]


class EmbeddingCache:
    """Vectors of one model under `directory/<model id>/`; `directory=None` keeps nothing on disk."""

    def __init__(self, directory: str | os.PathLike[str] | None, model_id: str, dimension: int) -> None:
        self.model_id = model_id
        self.dimension = dimension
        self.folder = Path(directory) / model_id if directory is not None else None
        self._vectors: dict[bytes, np.ndarray] = {}
        self._loaded = False

    def _chunks(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("chunk-*.npz"))

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for chunk in self._chunks():
            try:
                with np.load(chunk, allow_pickle=False) as npz:
                    keys, vectors = npz["keys"], npz["vectors"]
            except (OSError, KeyError, ValueError):  # a damaged chunk is ignored: its texts are embedded again
                continue
            if vectors.ndim != 2 or vectors.shape[1] != self.dimension or len(keys) != len(vectors):
                continue
            if keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
                continue
            for key, vector in zip(keys, vectors):
                self._vectors[key.tobytes()] = vector

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, int]:
        """Vectors of `texts` (cached ones reused, the rest encoded and stored); also how many were encoded."""
        self._load()
        keys = [text_key(self.model_id, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            first_text = {}
            for k, t in zip(keys, texts):
                first_text.setdefault(k, t)
            fresh = encode([first_text[k] for k in missing]).astype(np.float32)
            for k, v in zip(missing, fresh):
                self._vectors[k] = v
            self._store(missing, fresh)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._vectors[k]
        return out, len(missing)

    def _store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if len(self._chunks()) >= MAX_CHUNKS:  # merge everything known (this run's vectors included)
                old = self._chunks()
                keys, vectors = list(self._vectors), np.stack(list(self._vectors.values()))
            else:
                old = []
            self._write(keys, vectors)
            for chunk in old:
                chunk.unlink(missing_ok=True)
        except OSError:  # a cache that cannot be written costs time on the next training, nothing else
            return

    def _write(self, keys: list[bytes], vectors: np.ndarray) -> None:
        assert self.folder is not None
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES)  # bytes, not "S": no trailing NULs lost
        fd, tmp = tempfile.mkstemp(prefix=".chunk-", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=key_array, vectors=vectors.astype(np.float32))
            os.replace(tmp, self.folder / f"chunk-{Path(tmp).stem[len('.chunk-'):]}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
