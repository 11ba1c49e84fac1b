"""Word and character n-gram TF-IDF features, fitted with scikit-learn, applied by hand.

scikit-learn's `transform` spends about 1 ms per call on input checks and
sparse-matrix assembly, more than the whole parse budget; applying the fitted
vocabulary and idf weights directly takes a few microseconds per n-gram.
Both paths produce the same vectors (a test checks it).

After the n-gram lookups, a batch of texts costs a fixed handful of numpy
calls, and at this size each call's overhead is the cost: texts that arrive
together are featurized together.  Measured on the sample bot with 2,211
customer texts (its examples and BANKING77's test questions): 204 µs a parse
with the former one-text code, 110 µs a text in batches of 8, 104 µs in
batches of 16, 288 µs for a batch of one (bench texts, best of 5 passes).
The cached columns are packed C ints, joined into one array per batch and
sorted as 32-bit keys: 115 µs -> 63 µs a parse in batches of 16, with the
built-in entity patterns skipped on texts that none of them can match
(best of 12 passes, same machine, same run).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from array import array
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

TOKEN_PATTERN = r"(?u)\b\w+\b"  # keeps one-character words: Korean and Chinese have many
#: Distinct words whose char_wb columns are remembered per block (a few MB at most).
WORD_CACHE_SIZE = 50_000
_WHITE_SPACES = re.compile(r"\s\s+")  # as scikit-learn's char analyzers collapse whitespace
_WHITE_SPACE = re.compile(r"\s")
#: The blocks' cached columns are C ints packed by ``array("i")``.
_COLUMN = np.dtype(np.intc)


def row_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of each row's slice ``values[starts[i]:starts[i + 1]]`` (rows of a 2-D array), zeros where a slice is empty.

    Each slice is added up in order from its own entries alone, so a row's
    sum is the same whatever other rows are in the batch.
    """
    out = np.zeros((len(starts) - 1, values.shape[1]))
    filled = starts[:-1] < starts[1:]
    if filled.any():
        out[filled] = np.add.reduceat(values, starts[:-1][filled], axis=0)
    return out


def normalize_text(text: str) -> str:
    """NFKC folds full-width and compatibility forms (common in Korean and Japanese input), casefold the case."""
    return unicodedata.normalize("NFKC", text).casefold()


def _vectorizer(analyzer: str, ngram_range: tuple[int, int], min_df: int = 1) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        token_pattern=TOKEN_PATTERN if analyzer == "word" else None,
        lowercase=False,
        preprocessor=None,
        sublinear_tf=True,
        min_df=min_df,
        dtype=np.float64,
    )


@dataclass
class _Block:
    """One fitted vectorizer reduced to what inference needs."""

    analyzer_kind: str
    ngram_range: tuple[int, int]
    vocabulary: dict[str, int]
    idf: np.ndarray
    offset: int
    analyze: Callable[[str], list[str]]

    def __post_init__(self) -> None:
        #: n-gram -> column of the whole feature vector (the block's offset applied once, here)
        self._columns = {gram: j + self.offset for gram, j in self.vocabulary.items()}
        # Character n-grams are worked out per word and per word boundary, once
        # each, and reused: words repeat far more than texts do (see _char_columns).
        self._word_columns = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._columns_of_word)
        self._windows_inside = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._columns_inside)
        self._windows_across = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._columns_across)

    def columns(self, normalized: str, out: list[bytes]) -> None:
        """Append to ``out`` the feature-vector columns (packed C ints) of every n-gram of ``normalized``
        the block knows, repeats kept (they are the counts)."""
        if self.analyzer_kind == "char_wb":
            out += map(self._word_columns, normalized.split())
        elif self.analyzer_kind == "char":
            self._char_columns(_WHITE_SPACES.sub(" ", normalized), out)
        else:
            out.append(self._known(self.analyze(normalized)))

    def _columns_of_word(self, word: str) -> bytes:
        return self._known(self.analyze(word))

    def _known(self, grams: Iterable[str]) -> bytes:
        """The columns of the n-grams the block knows, packed: a batch's columns are then joined
        into one numpy array without converting each int, and bytes, like tuples of ints, stay out
        of the garbage collector's sight (the caches keep tens of thousands of these; when they
        were lists each full collection walked them all, and it showed in the p99 latency)."""
        return array("i", [j for j in map(self._columns.get, grams) if j is not None]).tobytes()

    def _char_columns(self, text: str, out: list[bytes]) -> None:
        """scikit-learn's ``char`` n-grams (every window of ``text``, whitespace runs already one
        character), counted without cutting every window out of every text.

        A window holds no whitespace (it lies inside a word: ``_columns_inside``)
        or has a first whitespace character p.  Those of p start after the
        whitespace before it and are all cut from the few characters around p,
        so the text either side of p (``_columns_across``) names them: each
        window is counted once, and both lookups are cached.
        """
        hi = self.ngram_range[1]
        word_start = 0
        for match in _WHITE_SPACE.finditer(text):
            p = match.start()
            out.append(self._windows_inside(text[word_start:p]))
            out.append(self._windows_across(text[max(word_start, p - hi + 1):p], text[p:p + hi]))
            word_start = p + 1
        out.append(self._windows_inside(text[word_start:]))

    def _columns_inside(self, word: str) -> bytes:
        lo, hi = self.ngram_range
        return self._known(word[i:i + n] for n in range(lo, min(hi, len(word)) + 1) for i in range(len(word) - n + 1))

    def _columns_across(self, before: str, after: str) -> bytes:
        """Windows of ``before + after`` that start in ``before`` (or at the whitespace) and reach the whitespace."""
        lo, hi = self.ngram_range
        text, p = before + after, len(before)
        return self._known(text[i:i + n] for i in range(p + 1) for n in range(max(lo, p - i + 1), hi + 1) if i + n <= len(text))


class Featurizer:
    """Concatenation of a word n-gram block, a char_wb n-gram block and optionally a raw char block, each L2-normalised.

    The raw `char` block (n-grams across word boundaries) feeds a second linear
    model whose scores are added to the first's (see nlu.classifier.fit_linear).
    """

    def __init__(self, word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (1, 4),
                 char_raw_ngrams: tuple[int, int] | None = None) -> None:
        self.word_ngrams = tuple(word_ngrams)
        self.char_ngrams = tuple(char_ngrams)
        self.char_raw_ngrams = tuple(char_raw_ngrams) if char_raw_ngrams else None
        self.blocks: list[_Block] = []
        self.n_features = 0

    def _specs(self) -> list[tuple[str, tuple[int, int]]]:
        specs = [("word", self.word_ngrams), ("char_wb", self.char_ngrams)]
        if self.char_raw_ngrams:
            specs.append(("char", self.char_raw_ngrams))
        return specs  # type: ignore[return-value]

    def block_columns(self) -> list[tuple[int, int]]:
        """(start, stop) column range of each fitted block, in order."""
        return [(b.offset, b.offset + len(b.vocabulary)) for b in self.blocks]

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        normalized = [normalize_text(t) for t in texts]
        parts = []
        self.blocks = []
        for cached in ("_idf", "_block_of"):  # refit: what was cached belongs to the old blocks
            self.__dict__.pop(cached, None)
        offset = 0
        for kind, ngrams in self._specs():
            vec = _vectorizer(kind, ngrams)
            try:
                matrix = vec.fit_transform(normalized)
            except ValueError:  # no token at all (e.g. only punctuation): an empty block
                vec = None
                matrix = sp.csr_matrix((len(normalized), 0))
            vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()} if vec is not None else {}
            idf = vec.idf_.astype(np.float64) if vec is not None else np.zeros(0)
            self.blocks.append(_Block(kind, ngrams, vocab, idf, offset, _vectorizer(kind, ngrams).build_analyzer()))
            offset += len(vocab)
            parts.append(matrix)
        self.n_features = offset
        return sp.hstack(parts, format="csr")

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        starts, cols, vals = self.transform_many(texts)
        return sp.csr_matrix((vals, cols, starts), shape=(len(texts), self.n_features))

    def transform_many(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The texts' feature vectors as CSR parts: row pointers, columns (sorted within a row) and values.

        Sublinear tf (1 + log count) times idf, L2-normalised per block, as
        scikit-learn's TfidfVectorizer.  Every step after the lookups works
        on each row's own entries in column order, so a text's vector is the
        same alone or in any batch (a test checks it).
        """
        chunks: list[bytes] = []
        lengths: list[int] = []
        for text in texts:
            normalized = normalize_text(text)
            before = len(chunks)
            for block in self.blocks:
                block.columns(normalized, chunks)
            lengths.append(sum(map(len, chunks[before:])) // _COLUMN.itemsize)
        n_rows = len(texts)
        columns = np.frombuffer(b"".join(chunks), dtype=_COLUMN)
        if not len(columns):
            return np.zeros(n_rows + 1, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64)
        # one key per (row, column): sorted, the repeats of a key are its count (32-bit keys sort twice as fast)
        key_type = np.int32 if n_rows * self.n_features < 2**31 else np.int64
        keys = columns.astype(key_type)
        keys += np.repeat(np.arange(n_rows, dtype=key_type) * self.n_features, lengths)
        keys.sort()
        first = np.empty(len(keys), dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        at = np.flatnonzero(first)
        counts = np.diff(np.append(at, len(keys)))
        rows, cols = np.divmod(keys[at].astype(np.intp), self.n_features)
        w = (1.0 + np.log(counts)) * self._idf[cols]
        cells = rows * len(self.blocks) + self._block_of[cols]  # (row, block) of each entry
        norms = np.sqrt(np.bincount(cells, weights=w * w, minlength=n_rows * len(self.blocks)))
        norms[norms == 0] = 1.0
        return np.searchsorted(rows, np.arange(n_rows + 1)), cols.astype(np.intp), w / norms[cells]

    @functools.cached_property
    def _block_of(self) -> np.ndarray:
        """The block of each feature column."""
        return np.repeat(np.arange(len(self.blocks)), [len(b.vocabulary) for b in self.blocks])

    @functools.cached_property
    def _idf(self) -> np.ndarray:
        return np.concatenate([b.idf for b in self.blocks]) if self.blocks else np.zeros(0)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able description plus arrays, so a model loads without unpickling code."""
        meta = {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "char_raw_ngrams": list(self.char_raw_ngrams) if self.char_raw_ngrams else None,
            "blocks": [
                {"analyzer": b.analyzer_kind, "ngram_range": list(b.ngram_range), "vocabulary": b.vocabulary, "offset": b.offset}
                for b in self.blocks
            ],
        }
        arrays = {f"idf_{i}": b.idf for i, b in enumerate(self.blocks)}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Featurizer":
        raw = meta.get("char_raw_ngrams")
        f = cls(tuple(meta["word_ngrams"]), tuple(meta["char_ngrams"]), tuple(raw) if raw else None)  # type: ignore[arg-type]
        for i, b in enumerate(meta["blocks"]):
            kind, ngrams = b["analyzer"], tuple(b["ngram_range"])
            f.blocks.append(
                _Block(kind, ngrams, dict(b["vocabulary"]), np.asarray(arrays[f"idf_{i}"], dtype=np.float64), int(b["offset"]),
                       _vectorizer(kind, ngrams).build_analyzer())  # type: ignore[arg-type]
            )
        f.n_features = sum(len(b.vocabulary) for b in f.blocks)
        return f
