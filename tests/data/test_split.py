import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.split import SPLITS, check_blocks, split_by_line


def test_the_split_is_three_contiguous_blocks_by_line_index():
    lines = [f"line {i}" for i in range(20)]
    blocks = split_by_line(lines, 0.8, 0.1, 0.1)
    assert blocks["train"] == lines[:16]
    assert blocks["val"] == lines[16:18]
    assert blocks["test"] == lines[18:]


def test_empty_lines_count_for_the_split_like_any_line():
    lines = ["a", "", "b", "", "c", "", "d", "e", "", "g"]
    blocks = split_by_line(lines, 0.5, 0.3, 0.2)
    assert blocks["train"] == ["a", "", "b", "", "c"]
    assert blocks["val"] == ["", "d", "e"]
    assert blocks["test"] == ["", "g"]


@pytest.mark.parametrize(
    "fractions, message",
    [
        ((0.9, 0.05, 0.1), "must sum to 1"),
        ((0.5, 0.0, 0.5), "val_fraction = 0.0 must be strictly between 0 and 1"),
        ((-0.1, 0.6, 0.5), "train_fraction = -0.1"),
    ],
)
def test_bad_fractions_are_refused(fractions, message):
    with pytest.raises(ParamError, match=message):
        split_by_line(["a"] * 10, *fractions)


def test_a_split_without_text_is_refused():
    with pytest.raises(DataError, match=r"the val split \(lines 9..9 of 10\) has no text"):
        split_by_line(["a"] * 10, 0.9, 0.04, 0.06)


def test_a_fraction_of_one_is_refused_even_when_the_sum_is_within_rounding_of_one():
    with pytest.raises(ParamError, match="train_fraction = 1.0 must be strictly between 0 and 1"):
        split_by_line(["a"] * 10, 1.0, 1e-10, 1e-10)


def test_a_pre_split_corpus_needs_text_in_each_of_its_three_files():
    good = {"train": ["a b"], "val": ["", "c"], "test": ["d"]}
    check_blocks(good)
    for name in SPLITS:
        with pytest.raises(DataError, match=f"the {name} file of the corpus has no text"):
            check_blocks({**good, name: ["", "  "]})
    with pytest.raises(DataError, match="the test file of the corpus has no text"):
        check_blocks({"train": ["a"], "val": ["b"]})


@pytest.mark.parametrize("block", [1, 3, 16, 1 << 20])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.3, 0.2), (0.34, 0.33, 0.33)])
def test_a_file_split_as_it_is_read_gives_the_blocks_of_the_lines_in_memory(
    tmp_path, monkeypatch, block, fractions
):
    from seqlm.data import clean
    from seqlm.data.corpus import range_lines, split_ranges

    monkeypatch.setattr(clean, "BLOCK", block)
    text = "".join(f"line {i}\n" if i % 4 else "\n" for i in range(1, 40)) + "a\r\nb\rc\r\nlast"
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    ranges = split_ranges({"corpus": path}, "corpus", fractions)
    expected = split_by_line(clean.split_lines(text), *fractions)
    assert {name: list(range_lines(r)) for name, r in ranges.items()} == expected


def test_a_split_read_from_a_file_with_no_text_is_refused_as_in_memory(tmp_path):
    from seqlm.data.corpus import split_ranges

    lines = ["some text"] * 8 + [""] * 2
    path = tmp_path / "corpus.txt"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError) as in_memory:
        split_by_line(lines, 0.8, 0.1, 0.1)
    with pytest.raises(DataError) as streamed:
        split_ranges({"corpus": path}, "corpus", (0.8, 0.1, 0.1))
    assert str(streamed.value) == str(in_memory.value)
    files = {s: tmp_path / f"{s}.txt" for s in SPLITS}
    for s, f in files.items():
        f.write_text("words\n" if s != "val" else "\n  \n")
    with pytest.raises(DataError, match="the val file of the corpus has no text"):
        split_ranges(files, "corpus", (0.8, 0.1, 0.1))
