import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.tokens import (
    count_characters,
    read_token_file,
    running_text,
    stream,
    tokenize_lines,
    write_token_file,
)
from seqlm.params import TokenizeParams

LINES = ["the time", "", "machine by"]


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
        ParamError, match="tokenize.token = 'bpe' is not a tokenization; choose one of: word, char"
    ):
        TokenizeParams(token="bpe")


def test_token_files_round_trip(tmp_path):
    token_lines = tokenize_lines(LINES, "char")
    path = tmp_path / "train.jsonl"
    write_token_file(path, token_lines)
    assert read_token_file(path) == token_lines


def test_a_malformed_token_file_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('["a"]\n{"x": 1}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: expected a JSON list of strings"):
        read_token_file(path)


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


def test_newline_line_ends_need_character_tokens():
    with pytest.raises(ParamError, match="line_end = 'newline' makes .* a character; it needs"):
        TokenizeParams(token="word", line_end="newline")
    with pytest.raises(ParamError, match="is not a line end; choose one of: space, eos, newline"):
        TokenizeParams(line_end="crlf")
