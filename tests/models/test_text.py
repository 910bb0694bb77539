"""Tests for meddtfm.models.text (CaptionTokenizer, TextEncoder)."""

import json

import pytest
import torch

from meddtfm.models.text import CaptionTokenizer, TextEncoder

CAPTIONS = [
    "Melanoma on the back, age 45, male.",
    "Nevus on the lower extremity; age 30, female",
    "melanoma, head/neck, age 70",
]


def test_split_lowercases_and_keeps_numbers() -> None:
    assert CaptionTokenizer.split("Melanoma, age 45!  Back/Torso_x") == ["melanoma", "age", "45", "back", "torso", "x"]
    assert CaptionTokenizer.split("") == []


def test_fit_puts_specials_first_then_frequent_words() -> None:
    tok = CaptionTokenizer.fit(CAPTIONS)
    assert tok.vocab[:3] == ["[PAD]", "[UNK]", "[CLS]"]
    assert (tok.PAD, tok.UNK, tok.CLS) == (0, 1, 2)
    assert tok.vocab[3:6] == ["age", "melanoma", "on"]  # counts 3, 2, 2; ties alphabetical
    small = CaptionTokenizer.fit(CAPTIONS, max_vocab=5)
    assert small.vocab == ["[PAD]", "[UNK]", "[CLS]", "age", "melanoma"] and len(small) == 5
    assert CaptionTokenizer.fit(CAPTIONS, min_freq=2).vocab[3:] == ["age", "melanoma", "on", "the"]
    with pytest.raises(ValueError, match="max_vocab"):
        CaptionTokenizer.fit(CAPTIONS, max_vocab=2)


def test_encode_layout_truncation_and_unknown_words() -> None:
    tok = CaptionTokenizer.fit(CAPTIONS)
    ids = tok.encode(["melanoma age 45", "zebra melanoma", ""], max_len=6)
    assert ids.dtype == torch.long and ids.shape == (3, 6)
    m, a, n45 = (tok.index[w] for w in ("melanoma", "age", "45"))
    assert ids[0].tolist() == [tok.CLS, m, a, n45, 0, 0]
    assert ids[1].tolist() == [tok.CLS, tok.UNK, m, 0, 0, 0]
    assert ids[2].tolist() == [tok.CLS, 0, 0, 0, 0, 0]
    assert tok.encode(["melanoma age 45"], max_len=2).tolist() == [[tok.CLS, m]]
    with pytest.raises(ValueError, match="list"):
        tok.encode("melanoma", max_len=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_len"):
        tok.encode(["x"], max_len=0)


def test_round_trip_and_json_state() -> None:
    tok = CaptionTokenizer.fit(CAPTIONS)
    ids = tok.encode(CAPTIONS, max_len=16)
    assert tok.decode(ids) == [" ".join(CaptionTokenizer.split(c)) for c in CAPTIONS]
    assert tok.decode(tok.encode(["melanoma on a zebra"], 8)) == ["melanoma on [UNK] [UNK]"]
    again = CaptionTokenizer.from_state(json.loads(json.dumps(tok.state_dict())))
    assert again.vocab == tok.vocab and torch.equal(again.encode(CAPTIONS, 16), ids)
    with pytest.raises(ValueError, match="CaptionTokenizer"):
        CaptionTokenizer.from_state({"vocab": "abc"})
    with pytest.raises(ValueError, match="start with"):
        CaptionTokenizer(["a", "b"])


def test_text_encoder_shape_padding_and_gradients() -> None:
    tok = CaptionTokenizer.fit(CAPTIONS)
    torch.manual_seed(0)
    enc = TextEncoder(len(tok), dim=24, width=16, layers=2, heads=2, max_len=16).eval()
    short, long = tok.encode(CAPTIONS, 10), tok.encode(CAPTIONS, 16)
    out = enc(short)
    assert out.shape == (3, 24)
    torch.testing.assert_close(enc(long), out)  # extra [PAD] are ignored
    assert not torch.allclose(out[0], out[2])
    all_pad = torch.zeros(2, 8, dtype=torch.long)  # a dropped caption's placeholder row stays finite
    assert torch.isfinite(enc(all_pad)).all()
    enc.train()
    enc(long).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.zeros(2, 17, dtype=torch.long))
