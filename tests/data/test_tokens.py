import json

import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.tokens import (
    TokenStats,
    as_tokenization,
    count_characters,
    iter_line_batches,
    read_token_file,
    read_token_stats,
    running_text,
    stream,
    stream_batches,
    tokenize_lines,
    write_token_file,
)
from seqlm.params import TokenizeParams

LINES = ["the time", "", "machine by"]
EOS_WORDS_ = TokenizeParams(token="word", line_end="eos")
NEWLINES_ = TokenizeParams(token="char", line_end="newline")


def test_word_streams_are_the_words_in_order():
    token_lines = tokenize_lines(LINES, "word")
    assert token_lines == [["the", "time"], ["machine", "by"]]
    assert stream(token_lines, "word") == ["the", "time", "machine", "by"]


def test_char_streams_put_one_space_between_lines():
    token_lines = tokenize_lines(LINES, "char")
    assert "".join(stream(token_lines, "char")) == "the time machine by"


def test_both_tokenizations_share_one_running_text_and_character_count():
    for token in ("word", "char"):
        token_lines = tokenize_lines(LINES, token)
        assert running_text(token_lines, token) == "the time machine by"
        assert count_characters(token_lines, token) == 19


def test_an_unknown_tokenization_lists_the_choices():
    with pytest.raises(
        ParamError,
        match="tokenize.token = 'wordpiece' is not a tokenization; "
        "choose one of: word, char, bpe, unigram",
    ):
        TokenizeParams(token="wordpiece")


@pytest.mark.parametrize("tok", ["char", "word", EOS_WORDS_, NEWLINES_])
def test_token_files_round_trip_in_batches_with_their_statistics(tmp_path, tok):
    t = as_tokenization(tok)
    lines = ["the time", "", "machine  by", "a,b \u2028c", "x"]
    token_lines = tokenize_lines(lines, t)
    path = tmp_path / "train.txt"
    stats = write_token_file(path, [token_lines[:2], [], token_lines[2:]], t)
    assert stats == TokenStats.of(token_lines, t) == read_token_stats(path)
    assert stats.characters == len(running_text(token_lines, t))
    assert stats.tokens == len(stream(token_lines, t))
    assert read_token_file(path, t.token) == token_lines
    for size in (1, 5, 1000):  # any batching gives the same lines and the same stream
        batches = list(iter_line_batches(path, t.token, batch_chars=size))
        assert [line for b in batches for line in b] == token_lines
        assert [x for part in stream_batches(batches, t) for x in part] == stream(token_lines, t)


def test_a_token_file_is_one_line_of_text_per_line(tmp_path):
    path = tmp_path / "train.txt"
    write_token_file(path, [tokenize_lines(["the  time", "", "machine"], EOS_WORDS_)], EOS_WORDS_)
    assert path.read_text(encoding="utf-8") == "the time\n\nmachine\n"
    assert json.loads(path.with_suffix(".json").read_text()) == {
        "lines": 3,
        "tokens": 6,
        "characters": 18,
        "bytes": 18,
        "words": 6,  # 3 words and 3 line ends
    }


def test_a_truncated_or_missing_token_file_is_refused(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("ab\ncd", encoding="utf-8")
    with pytest.raises(DataError, match="bad.txt:2: the last line has no line end"):
        read_token_file(path, "char")
    with pytest.raises(DataError, match="run the tokenize stage"):
        read_token_file(tmp_path / "none.txt", "char")
    with pytest.raises(DataError, match="run the tokenize stage"):
        read_token_stats(path)
    path.with_suffix(".json").write_text('{"lines": 1}')
    with pytest.raises(DataError, match="not the statistics of a token file"):
        read_token_stats(path)


EOS_WORDS = TokenizeParams(token="word", line_end="eos")
EOS_CHARS = TokenizeParams(token="char", line_end="eos")
NEWLINES = TokenizeParams(token="char", line_end="newline")


def test_with_eos_every_line_empty_ones_too_ends_with_an_eos_token():
    token_lines = tokenize_lines(LINES, EOS_WORDS)
    assert token_lines == [["the", "time"], [], ["machine", "by"]]
    assert stream(token_lines, EOS_WORDS) == [
        "the",
        "time",
        "<eos>",
        "<eos>",
        "machine",
        "by",
        "<eos>",
    ]
    assert stream(tokenize_lines(["ab", "c"], EOS_CHARS), EOS_CHARS) == [
        "a",
        "b",
        "<eos>",
        "c",
        "<eos>",
    ]


def test_with_newline_the_line_break_is_a_character_after_every_line():
    token_lines = tokenize_lines(["ab", "", "c"], NEWLINES)
    assert "".join(stream(token_lines, NEWLINES)) == "ab\n\nc\n"


def test_bits_per_character_counts_one_character_per_line_end_in_eos_and_newline_modes():
    # the running text is every line followed by "\n"; <eos> stands for that line end
    for tok in (EOS_WORDS, EOS_CHARS, NEWLINES):
        token_lines = tokenize_lines(LINES, tok)
        assert running_text(token_lines, tok) == "the time\n\nmachine by\n"
        assert count_characters(token_lines, tok) == 21


def test_newline_line_ends_need_character_or_subword_tokens():
    with pytest.raises(ParamError, match="line_end = 'newline' makes .* a token of its own; word"):
        TokenizeParams(token="word", line_end="newline")
    with pytest.raises(ParamError, match="is not a line end; choose one of: space, eos, newline"):
        TokenizeParams(line_end="crlf")
