import pytest

from seqlm.core.errors import DataError
from seqlm.data.clean import (
    clean_blocks,
    clean_line,
    clean_text,
    read_blocks,
    split_lines,
    strip_gutenberg,
)
from seqlm.params import CleanParams


def test_the_textbook_rule_keeps_only_lower_case_letters_and_single_spaces():
    assert clean_line("  The Time-Machine, by H. G. Wells!! ") == "the time machine by h g wells"
    assert clean_line("way--marking 1895") == "way marking"
    assert clean_line("...") == ""


def test_a_bom_crlf_endings_and_non_ascii_text_are_handled():
    raw = "\ufeffCafé au lait\r\nnaïve — señor\r\n\r\nend".encode("utf-8")
    assert clean_text(raw, CleanParams()) == ["caf au lait", "na ve se or", "", "end"]


AS_PUBLISHED = CleanParams(mode="none")


def test_mode_none_keeps_the_text_as_published_after_bom_line_ends_and_nfc():
    decomposed = "Cafe\u0301"  # e + combining acute: NFC makes it one character
    raw = ("\ufeff" + f"A <unk> don't,  {decomposed}\r\nsecond\rthird\n\nlast").encode("utf-8")
    assert clean_text(raw, AS_PUBLISHED) == [
        "A <unk> don't,  Caf\u00e9",
        "second",
        "third",
        "",
        "last",
    ]


def test_text_that_is_not_utf8_is_refused_with_the_offset_of_the_first_bad_byte():
    latin1 = "naïve\n".encode("latin-1")  # ï is 0xef in Latin-1, not UTF-8
    for mode in ("textbook", "none"):
        with pytest.raises(DataError, match=r"byte 2 \(0xef\).*iconv -f latin1"):
            clean_text(latin1, CleanParams(mode=mode))


def test_the_offset_counts_the_bom_too():
    with pytest.raises(DataError, match=r"byte 5 \(0xff\)"):
        clean_text(b"\xef\xbb\xbfab\xffc", AS_PUBLISHED)


def test_random_bytes_and_nul_bytes_are_refused_as_not_text():
    import random

    noise = random.Random(0).randbytes(200_000)
    with pytest.raises(DataError, match="is not UTF-8 text: byte"):
        clean_text(noise, AS_PUBLISHED)
    with pytest.raises(DataError, match="byte 3 is a NUL byte"):
        clean_text(b"abc\x00def\n", AS_PUBLISHED)


def test_a_text_of_white_space_only_is_refused_in_mode_none():
    with pytest.raises(DataError, match="nothing but white space"):
        clean_text(b"  \n\t\n", AS_PUBLISHED)


def test_line_splitting_matches_text_mode_readlines():
    assert split_lines("a\nb\r\nc\rd\n") == ["a", "b", "c", "d"]
    assert split_lines("a\n\nb") == ["a", "", "b"]


def test_empty_lines_are_kept_so_line_indices_match_the_source():
    assert clean_text(b"one\n\n--\ntwo\n", CleanParams()) == ["one", "", "", "two"]


GUTENBERG = """Project Gutenberg's header
*** START OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***
The Time Machine
*** END OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***
licence text
"""


def test_a_gutenberg_header_and_footer_can_be_stripped():
    assert clean_text(GUTENBERG.encode(), CleanParams(strip_gutenberg=True)) == ["the time machine"]
    kept = clean_text(GUTENBERG.encode(), CleanParams(strip_gutenberg=False))
    assert "licence text" in kept


def test_stripping_a_text_without_gutenberg_markers_is_an_error():
    with pytest.raises(DataError, match=r"no '\*\*\* START OF \.\.\.' line"):
        strip_gutenberg(["just a book"])
    with pytest.raises(DataError, match="no '\\*\\*\\* END OF"):
        strip_gutenberg(["*** START OF X ***", "text"])


def test_a_text_without_letters_is_refused():
    with pytest.raises(DataError, match="no letters"):
        clean_text(b"1234\n!!!\n", CleanParams())


TEXTS = [
    "\ufeffThe Time\r\nMachine, by H. G. Wells\r\rcafé naïve\rCRLF\r\n\n*** START OF IT ***\nλόγος and words"
    " 文字\r\n*** END OF IT ***\r\ntail\n",
    "no final newline\nand a long line " + "x" * 50 + "\r",
]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("mode", ["textbook", "none"])
@pytest.mark.parametrize("gutenberg", [False, True])
def test_a_file_cleaned_block_by_block_gives_the_lines_of_the_whole_text(
    tmp_path, block, mode, gutenberg
):
    params = CleanParams(mode=mode, strip_gutenberg=gutenberg)
    for i, text in enumerate(TEXTS[: 1 if gutenberg else 2]):
        path = tmp_path / f"t{i}.txt"
        path.write_bytes(text.encode("utf-8"))
        blocks = list(read_blocks(path, block))
        assert b"".join(b for _, b in blocks) == path.read_bytes()
        assert all(b.endswith(b"\n") for _, b in blocks[:-1])  # cut after a line feed only
        assert [at for at, _ in blocks] == [
            sum(len(b) for _, b in blocks[:j]) for j in range(len(blocks))
        ]
        whole = clean_text(path.read_bytes(), params)
        assert list(clean_blocks(blocks, params)) == whole


def test_a_bad_byte_in_a_later_block_is_reported_at_its_offset_in_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"line one\nline two\nthree \xff four\n")
    with pytest.raises(DataError, match=r"byte 24 \(0xff\)"):
        list(clean_blocks(read_blocks(path, 4), CleanParams()))
