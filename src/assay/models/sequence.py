"""Sequence architectures: a GRU and a pre-norm transformer encoder.

Both take token ids ``(B, T)`` (text; 0 is padding), signals ``(B, C, L)``,
and the transformer also images ``(B, C, H, W)`` cut into patches (ViT,
Dosovitskiy et al. 2021). The transformer's body returns each block's
attention weights from the call that asks for them (``encode(x,
attention=True)``; ``models.forward.forward_pass(..., attention=True)`` over a
split), never kept on the module, so concurrent calls cannot overwrite each
other's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import SpecError
from .classifier import Classifier


class _Tokens(nn.Module):
    """Embeds the input as a sequence ``(B, T, D)`` plus a padding mask ``(B, T)`` (True = pad)."""

    def __init__(self, input_shape: Sequence[int], dim: int, vocab_size: int | None, patch: int) -> None:
        super().__init__()
        self.kind = "tokens" if vocab_size else {2: "signal", 3: "image"}.get(len(input_shape), "")
        if not self.kind:
            raise SpecError(f"arch 'transformer': input shape {tuple(input_shape)} needs vocab_size (token ids) or signals/images")
        if self.kind == "tokens":
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
            self.length = int(input_shape[0])
        elif self.kind == "signal":
            c, length = input_shape
            self.embed = nn.Conv1d(c, dim, patch, stride=patch)  # 1-D patches
            self.length = length // patch
        else:
            c, h, w = input_shape
            self.embed = nn.Conv2d(c, dim, patch, stride=patch)  # ViT patches
            self.length = (h // patch) * (w // patch)
        if self.length < 1:
            raise SpecError(f"patch {patch} is larger than the input {tuple(input_shape)}; use a smaller patch")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "tokens":
            return self.embed(x), x == 0  # (B, T, D), (B, T)
        z = self.embed(x).flatten(2).transpose(1, 2)  # (B, T, D)
        return z, torch.zeros(z.shape[:2], dtype=torch.bool, device=z.device)


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's output ``(B, T, D)`` and, when asked, its attention ``(B, heads, T, T)``."""
        h = self.norm1(x)
        out, weights = self.attn(h, h, h, key_padding_mask=pad, need_weights=attention, average_attn_weights=False)
        x = x + self.drop(out)
        return x + self.drop(self.mlp(self.norm2(x))), weights


class _TransformerBody(nn.Module):
    def __init__(self, tokens: _Tokens, dim: int, depth: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, tokens.length + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def encode(self, x: torch.Tensor, attention: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The [CLS] features ``(B, D)`` and, when asked, each block's attention ``(B, heads, T+1, T+1)`` (else ``[]``)."""
        z, pad = self.tokens(x)  # (B, T, D), (B, T)
        # shape[0], not len(): len() would freeze the batch size in an exported ONNX graph
        z = torch.cat([self.cls.expand(z.shape[0], -1, -1), z], dim=1) + self.position[:, : z.shape[1] + 1]
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)  # the [CLS] slot is never padding
        maps = []
        for block in self.blocks:
            z, weights = block(z, pad, attention)
            if attention:
                maps.append(weights)
        return self.norm(z[:, 0]), maps  # (B, D): the [CLS] token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]


def transformer(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab_size: int | None = None,
    dim: int = 128,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: int = 2,
    patch: int = 4,
    dropout: float = 0.1,
) -> Classifier:
    """A pre-norm transformer encoder with a [CLS] token over tokens, 1-D or 2-D patches."""
    if dim % heads:
        raise SpecError(f"arch 'transformer': dim {dim} must be divisible by heads {heads}")
    tokens = _Tokens(input_shape, dim, vocab_size, patch)
    return Classifier(_TransformerBody(tokens, dim, depth, heads, mlp_ratio, dropout), nn.Linear(dim, num_classes))


class _GRUBody(nn.Module):
    def __init__(self, input_shape: Sequence[int], vocab_size: int | None, embed_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.tokens = vocab_size is not None
        if self.tokens:
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            width = embed_dim
        elif len(input_shape) == 2:
            width = input_shape[0]  # signal channels are the per-step features
        else:
            raise SpecError(f"arch 'gru': needs token ids or signals (C, L), got shape {tuple(input_shape)}")
        self.gru = nn.GRU(width, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens:
            keep = (x != 0).unsqueeze(-1).float()  # (B, T, 1)
            z = self.embed(x)
        else:
            z = x.transpose(1, 2)  # (B, L, C)
            keep = torch.ones_like(z[..., :1])
        out, _ = self.gru(z)  # (B, T, 2H)
        pooled = (out * keep).sum(1) / keep.sum(1).clamp(min=1)  # mean over real steps
        return self.drop(pooled)


def gru(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab_size: int | None = None,
    embed_dim: int = 128,
    hidden: int = 128,
    layers: int = 1,
    dropout: float = 0.2,
) -> Classifier:
    """A bidirectional GRU with masked mean pooling, over tokens or signal steps."""
    return Classifier(_GRUBody(input_shape, vocab_size, embed_dim, hidden, layers, dropout), nn.Linear(2 * hidden, num_classes))
