"""Caption side of the condition encoder (paper Eq. 1, ``C = f_theta(caption/mask)``).

docs/design.md: our own tokenizer and a small transformer, no hub weights. ``CaptionTokenizer`` is a
word-level vocabulary fitted on the training captions; ``TextEncoder`` turns its token ids into one
global caption vector, the transformer's output at the leading [CLS] token.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CaptionTokenizer", "TextEncoder"]

_WORD = re.compile(r"[^\W_]+")  # runs of letters or digits (Unicode-aware); everything else splits
SPECIALS = ("[PAD]", "[UNK]", "[CLS]")


class CaptionTokenizer:
    """Word-level tokenizer: lower-case, split on non-alphanumerics, numbers kept as words.

    Ids: ``[PAD] = 0``, ``[UNK] = 1``, ``[CLS] = 2``, then the fitted words.
    """

    PAD, UNK, CLS = 0, 1, 2

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {vocab[:3]}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary has duplicate entries")
        self.vocab = vocab
        self.index = {word: i for i, word in enumerate(vocab)}

    @staticmethod
    def split(text: str) -> list[str]:
        """Words of ``text``: ``"Melanoma, age 45!" -> ["melanoma", "age", "45"]``."""
        return _WORD.findall(text.lower())

    @classmethod
    def fit(cls, captions: Iterable[str], max_vocab: int | None = None, min_freq: int = 1) -> CaptionTokenizer:
        """Vocabulary of the most frequent words (ties alphabetical); ``max_vocab`` counts the specials."""
        if max_vocab is not None and max_vocab < len(SPECIALS):
            raise ValueError(f"max_vocab must be >= {len(SPECIALS)}, got {max_vocab}")
        counts = Counter(word for caption in captions for word in cls.split(caption))
        words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            words = words[: max_vocab - len(SPECIALS)]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, captions: Sequence[str], max_len: int) -> Tensor:
        """Token ids ``(B, max_len)``: [CLS], the words (unknown ones as [UNK], cut to fit), then [PAD]."""
        if isinstance(captions, str):
            raise ValueError("encode takes a list of captions, not one string")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        ids = torch.full((len(captions), max_len), self.PAD, dtype=torch.long)
        for row, caption in enumerate(captions):
            words = [self.CLS, *(self.index.get(w, self.UNK) for w in self.split(caption))][:max_len]
            ids[row, : len(words)] = torch.tensor(words, dtype=torch.long)
        return ids

    def decode(self, ids: Tensor) -> list[str]:
        """Captions from ids ``(B, L)``: words joined by spaces, [PAD] and [CLS] left out."""
        skip = {self.PAD, self.CLS}
        return [" ".join(self.vocab[i] for i in row if i not in skip) for row in ids.tolist()]

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state for checkpoints."""
        return {"kind": "word", "vocab": list(self.vocab)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CaptionTokenizer:
        if state.get("kind") != "word" or not isinstance(state.get("vocab"), list):
            raise ValueError("not a CaptionTokenizer state: need kind='word' and a vocab list")
        return cls(state["vocab"])


class TextEncoder(nn.Module):
    """Token ids ``(B, L)`` (``L <= max_len``, [CLS] first) -> caption vector ``(B, dim)``.

    Token embedding + learned positions, a pre-norm ``nn.TransformerEncoder`` that ignores [PAD]
    keys, a final LayerNorm, and a linear map of the [CLS] output to ``dim``. The [CLS] position is
    never masked, so a row of only [PAD] (a sample whose caption is dropped) stays finite.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        width: int = 128,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"text width {width} must be divisible by heads {heads}")
        self.max_len = max_len
        self.token = nn.Embedding(vocab_size, width, padding_idx=CaptionTokenizer.PAD)
        self.position = nn.Parameter(torch.randn(max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)
        with torch.no_grad():
            nn.init.normal_(self.token.weight, std=0.02)
            self.token.weight[CaptionTokenizer.PAD].zero_()

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.max_len:
            raise ValueError(f"tokens must be (B, L) with 1 <= L <= {self.max_len}, got {tuple(tokens.shape)}")
        pad = tokens == CaptionTokenizer.PAD
        pad[:, 0] = False
        h = self.token(tokens) + self.position[: tokens.shape[1]]
        h = self.transformer(h, src_key_padding_mask=pad)
        return self.proj(self.norm(h[:, 0]))
