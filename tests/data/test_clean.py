import pytest

from seqlm.core.errors import DataError
from seqlm.data.clean import clean_line, clean_text, split_lines, strip_gutenberg
from seqlm.params import CleanParams


def test_the_textbook_rule_keeps_only_lower_case_letters_and_single_spaces():
    assert clean_line("  The Time-Machine, by H. G. Wells!! ") == "the time machine by h g wells"
    assert clean_line("way--marking 1895") == "way marking"
    assert clean_line("...") == ""


def test_a_bom_crlf_endings_and_non_ascii_text_are_handled():
    raw = "\ufeffCafé au lait\r\nnaïve — señor\r\n\r\nend".encode("utf-8")
    assert clean_text(raw, CleanParams()) == ["caf au lait", "na ve se or", "", "end"]


def test_invalid_utf8_bytes_do_not_crash_cleaning():
    assert clean_text(b"ab\xff\xfecd\n", CleanParams()) == ["ab cd"]


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
