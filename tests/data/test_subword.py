"""Subword tokens (``tokenize.token: bpe`` / ``unigram``), bits per byte and word perplexity: the
model trained on train only, lossless, deterministic; every split on the same scale."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

import seqlm
from pipeline_support import TINY_TEXT
from seqlm.core.errors import ParamError
from seqlm.data.corpus import line_blocks, prepare_text, train_tokenizer
from seqlm.data.subword import (
    BYTES,
    PieceStream,
    Subword,
    pieces_text,
    subword_vocab,
    train_subword,
)
from seqlm.data.tokens import running_text
from seqlm.neural.checkpoint import add_text_reading
from seqlm.neural.evaluation import score
from seqlm.neural.export import write_portable
from seqlm.neural.loop import train
from seqlm.ngram import count_stream, fit_ngram
from seqlm.ngram.store import save_ngram
from seqlm.params import CleanParams, TokenizeParams, VocabParams
from seqlm.perplexity import score_split
from seqlm.sampling import TextFormat, join_tokens, text_reading
from tiny_pipeline import TINY_NET, TINY_TRAIN

KINDS = ("bpe", "unigram")
# every split has characters its train split never had (é, ☃, 𝄞, a tab, runs of spaces)
SPLITS = {
    "train": TINY_TEXT * 3,
    "val": "Th\u00e9 Time  Traveller\tsmiled \u2603.\nIs not that rather large?\n",
    "test": "A geometry \U0001d11e of   four dimensions.\n\nHe paused.\n",
}
NONE = CleanParams(mode="none")


def tok(kind: str, size: int = 300, line_end: str = "newline") -> TokenizeParams:
    return TokenizeParams(token=kind, line_end=line_end, vocab_size=size)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("line_end", ["newline", "eos"])
def test_a_splits_pieces_spell_its_running_text_exactly_and_nothing_is_out_of_vocabulary(
    kind, line_end
):
    t = tok(kind, line_end=line_end)
    data = prepare_text(SPLITS, t, clean=NONE)
    for split, text in SPLITS.items():
        assert running_text(data.token_lines[split], t) == text
        assert data.splits[split].oov == 0
    # the unseen characters are spelled in UTF-8 bytes
    assert "<0xE2>" in data.token_lines["val"][0] and "<0xF0>" in data.token_lines["test"][0]
    assert len(data.vocab) == 300 - 1 + 3  # the pieces but <unk>; seqlm's <unk>, <bos>, line end


@pytest.mark.parametrize("kind", KINDS)
def test_training_twice_gives_the_same_model_bytes(kind):
    lines = SPLITS["train"].splitlines()
    assert train_subword(lines, kind, 300) == train_subword(lines, kind, 300)
    assert train_subword(lines, kind, 300) != train_subword(lines, kind, 320)


@pytest.mark.parametrize("kind", KINDS)
def test_the_tokenizer_sees_the_train_split_only(kind):
    t = tok(kind)
    other = {**SPLITS, "test": "zzzz qqqq xxxx zzzz qqqq xxxx\n" * 50}
    first = train_tokenizer(line_blocks({s: v.splitlines() for s, v in SPLITS.items()}, t), t)
    second = train_tokenizer(line_blocks({s: v.splitlines() for s, v in other.items()}, t), t)
    assert first == second
    changed = {**SPLITS, "train": SPLITS["train"] + "zzzz qqqq\n" * 50}
    third = train_tokenizer(line_blocks({s: v.splitlines() for s, v in changed.items()}, t), t)
    assert third != first


def test_pieces_text_decodes_spaces_and_byte_runs_and_survives_broken_bytes():
    assert pieces_text(["\u2581the", "\u2581", "<0xE2>", "<0x98>", "<0x83>", "!"]) == " the ☃!"
    assert pieces_text(["a", "<0xE2>", "<0x98>"]) == "a\ufffd"  # a sampled, unfinished character
    assert pieces_text(["x", "\n", "y"]) == "x\ny"


def test_a_vocab_size_the_train_split_cannot_support_is_refused_with_the_bound():
    lines = SPLITS["train"].splitlines()
    chars = len(set("".join(lines)))
    with pytest.raises(ParamError, match=f"too small for bpe.*at least {BYTES + 1 + chars}"):
        train_subword(lines, "bpe", BYTES + chars)
    with pytest.raises(
        ParamError, match=r"more than the train split supports for unigram: at most"
    ):
        train_subword(lines, "unigram", 50_000)


def test_subword_settings_that_cannot_work_are_refused_naming_key_value_and_choices():
    with pytest.raises(ParamError, match="line_end = 'space'.*need line_end: eos or newline"):
        TokenizeParams(token="bpe", line_end="space", vocab_size=300)
    with pytest.raises(ParamError, match="tokenize.vocab_size is null; tokenize.token = 'unigram'"):
        TokenizeParams(token="unigram", line_end="eos")
    with pytest.raises(ParamError, match="tokenize.vocab_size = 300 sizes a subword model"):
        TokenizeParams(token="char", vocab_size=300)
    with pytest.raises(ParamError, match="vocab.min_freq = 2 and vocab.max_size = None"):
        prepare_text(SPLITS, tok("bpe"), VocabParams(min_freq=2), NONE)


def test_the_subword_vocabulary_holds_every_piece_most_frequent_first():
    t = tok("bpe")
    data = prepare_text(SPLITS, t, clean=NONE)
    pieces = Subword(data.subword).vocabulary()
    assert set(pieces) <= set(data.vocab.tokens) and "<0x00>" in data.vocab
    seen = [c for c in data.vocab.counts[2:] if c > 0]
    assert seen == sorted(seen, reverse=True)
    with pytest.raises(ParamError, match="max_size"):
        subword_vocab(collections.Counter(), data.subword, VocabParams(max_size=5))


def test_bits_per_byte_is_bits_per_char_on_ascii_and_smaller_on_unicode():
    ascii_data = prepare_text(TINY_TEXT * 3, TokenizeParams(token="char"))
    val = ascii_data.splits["val"]
    assert val.bytes == val.characters
    lp = np.full(val.ids.size, -1.0)
    s = score_split(lp, val.characters, val.oov, val.bytes, val.words)
    assert s.bits_per_byte == s.bits_per_char
    uni = prepare_text(SPLITS, tok("bpe"), clean=NONE).splits["val"]
    assert uni.bytes == len(SPLITS["val"].encode("utf-8")) > uni.characters == len(SPLITS["val"])
    s = score_split(np.full(uni.ids.size, -1.0), uni.characters, 0, uni.bytes, uni.words)
    assert s.bits_per_byte == pytest.approx(s.bits_per_char * uni.characters / uni.bytes)
    assert s.bits_per_byte < s.bits_per_char


def test_word_perplexity_is_a_word_models_perplexity_and_counts_the_same_words_for_any_tokens():
    words = prepare_text(SPLITS, TokenizeParams(token="word", line_end="eos"), clean=NONE)
    pieces = prepare_text(SPLITS, tok("unigram", line_end="eos"), clean=NONE)
    chars = prepare_text(SPLITS, TokenizeParams(token="char", line_end="newline"), clean=NONE)
    for split in ("val", "test"):
        w = words.splits[split]
        assert w.words == w.ids.size  # the word stream: its words and an <eos> a line
        assert pieces.splits[split].words == chars.splits[split].words == w.words
        s = score_split(np.full(w.ids.size, -2.0), w.characters, w.oov, w.bytes, w.words)
        assert s.word_perplexity == pytest.approx(s.perplexity) == pytest.approx(math.exp(2.0))
    p = pieces.splits["val"]
    s = score_split(np.full(p.ids.size, -1.0), p.characters, 0, p.bytes, p.words)
    assert s.word_perplexity == pytest.approx(math.exp(p.ids.size / p.words))


@pytest.mark.parametrize("kind", KINDS)
def test_a_subword_checkpoint_alone_scores_a_text_as_the_evaluator_and_generates_text(
    kind, tmp_path
):
    t = tok(kind)
    data = prepare_text(SPLITS, t, clean=NONE)
    ckpt = tmp_path / "model.pt"
    train("lstm", TINY_NET, TINY_TRAIN, data.vocab, data.splits["train"], data.splits["val"],
          checkpoint_path=ckpt)  # fmt: skip
    fmt = TextFormat(kind, "newline", "none", data.subword)
    add_text_reading(ckpt, data.vocab, text_reading(fmt))
    lm = seqlm.load(ckpt)
    want, _ = score(lm.model, data.splits["test"], data.vocab.id_of("<bos>"))
    got = lm.score(SPLITS["test"])
    assert got == want  # every field: nll, bits per char and per byte, word perplexity
    assert got.bytes == len(SPLITS["test"].encode("utf-8")) and got.oov == 0
    safetensors, _ = write_portable(ckpt)  # the exported model carries the tokenizer too
    assert seqlm.load(safetensors).score(SPLITS["test"]) == want
    bos = data.vocab.id_of("<bos>")
    ngram = fit_ngram(count_stream(data.splits["train"].ids, len(data.vocab), 3, bos), 3)
    save_ngram(ngram, data.vocab, text_reading(fmt), tmp_path / "model.npz")
    test = data.splits["test"]
    want_ngram = score_split(
        ngram.target_logprobs(test.ids), test.characters, 0, test.bytes, test.words
    )
    assert seqlm.load(tmp_path / "model.npz").score(SPLITS["test"]) == want_ngram
    text = "".join(lm.generate("The Time", max_tokens=12, seed=1))
    assert text == "".join(lm.generate("The Time", max_tokens=12, seed=1)) and text
    stream = PieceStream()  # a streamed character appears once its bytes are complete
    assert [stream.feed(p) for p in ["\u2581a", "<0xE2>", "<0x98>", "<0x83>", "<eos>"]] == [
        " a",
        "",
        "",
        "\u2603",
        "\n",
    ]
    assert join_tokens(["\u2581a", "<eos>", "b"], TextFormat(kind, "eos", "none")) == " a\nb"


def test_a_model_file_of_subword_tokens_without_its_tokenizer_is_refused(tmp_path):
    from seqlm.sampling import format_of_reading

    with pytest.raises(ParamError, match="a bpe model file must carry its tokenizer"):
        format_of_reading({"token": "bpe", "line_end": "eos", "clean": "none"})
