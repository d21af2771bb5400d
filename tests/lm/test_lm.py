"""``seqlm.load`` and the LanguageModel interface: text read as the pipeline reads a split, the
convention's numbers to the last bit, per-line and per-token breakdowns, generation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import seqlm
from pipeline_support import TINY_TEXT
from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab
from seqlm.lm.base import LanguageModel, State
from seqlm.lm.text import encode_text
from seqlm.mixture import apply_mixture
from seqlm.neural.checkpoint import add_text_reading
from seqlm.neural.dynamic import dynamic_logprobs
from seqlm.neural.evaluation import score
from seqlm.ngram import count_stream, fit_ngram, write_arpa
from seqlm.ngram.store import save_ngram
from seqlm.ops.score import COLUMNS
from seqlm.params import TokenizeParams
from seqlm.sampling import TextFormat, sampling_distribution
from tiny_pipeline import tiny_data, train_tiny

TEXT = TINY_TEXT * 4
READING = {"clean": "textbook", "token": "char", "line_end": "space"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny LSTM and a 4-gram trained on the tiny text's train split, saved as model files."""
    tmp = tmp_path_factory.mktemp("run")
    _, ckpt, vocab, splits = train_tiny(tmp, TEXT)
    add_text_reading(ckpt, vocab, READING)
    counts = count_stream(splits["train"].ids, len(vocab), 4, vocab.id_of("<bos>"))
    ngram = fit_ngram(counts, 4)
    save_ngram(ngram, vocab, READING, tmp / "ngram" / "model.npz")
    data = tiny_data(TEXT)
    test_text = "".join("".join(line) + "\n" for line in data.token_lines["test"])
    return {
        "dir": tmp,
        "ckpt": ckpt,
        "vocab": vocab,
        "splits": splits,
        "ngram": ngram,
        "test_text": test_text,
    }


def test_a_checkpoint_scores_a_splits_text_as_the_evaluator_scores_the_split(run):
    lm = seqlm.load(run["ckpt"])
    assert lm.kind == "neural" and lm.name == "lstm"
    got = lm.score(run["test_text"])
    want, want_lp = score(lm.model, run["splits"]["test"], run["vocab"].id_of("<bos>"))
    assert got == want  # every field, the nll to the last bit
    np.testing.assert_array_equal(lm.logprobs(run["test_text"]).logprobs, want_lp)


def test_the_ngram_file_scores_as_the_fitted_model(run):
    lm = seqlm.load(run["dir"] / "ngram")  # the folder is looked into
    assert lm.kind == "ngram" and lm.name == "4-gram"
    lp = lm.logprobs(run["test_text"]).logprobs
    np.testing.assert_array_equal(lp, run["ngram"].target_logprobs(run["splits"]["test"].ids))


def test_saving_the_ngram_twice_gives_the_same_bytes(run, tmp_path):
    for name in ("a.npz", "b.npz"):
        save_ngram(run["ngram"], run["vocab"], READING, tmp_path / name)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_an_ensemble_manifest_mixes_its_members_as_the_evaluate_stage_does(run, tmp_path):
    from seqlm.lm.load import ensemble_manifest

    dyn = {"lr": 0.5, "decay": 0.01, "segment": 8, "update": "sgd"}
    weights = {"ngram": 0.2, "lstm": 0.5, "lstm-dynamic": 0.3}
    files = {
        "ngram": {"path": str(run["dir"] / "ngram" / "model.npz")},
        "lstm": {"path": str(run["ckpt"])},
        "lstm-dynamic": {"path": str(run["ckpt"]), "dynamic": dyn},
    }
    out = tmp_path / "ensemble.json"
    members = [{**files[n], "name": n, "weight": w} for n, w in weights.items()]
    import json

    out.write_text(json.dumps(ensemble_manifest(out, members)))
    lm = seqlm.load(out)
    assert lm.kind == "ensemble"
    ids = run["splits"]["test"].ids
    neural = seqlm.load(run["ckpt"])
    bos = run["vocab"].id_of("<bos>")
    want = apply_mixture(
        {
            "ngram": run["ngram"].target_logprobs(ids),
            "lstm": score(neural.model, run["splits"]["test"], bos)[1],
            "lstm-dynamic": dynamic_logprobs(neural.model, ids, bos, **dyn),
        },
        weights,
    )
    np.testing.assert_array_equal(lm.logprobs(run["test_text"]).logprobs, want)
    # the static and the dynamic member share one loaded checkpoint
    assert lm.members[1].model is lm.members[2].model
    static = seqlm.lm.models.EnsembleLM(
        "static", [seqlm.lm.models.Member(m.name, m.model, m.weight) for m in lm.members]
    )
    scored = static.logprobs("the time machine", top=2)  # alternatives: the members' mixed
    dist = static.distributions(scored.text.ids)
    np.testing.assert_allclose(
        dist[np.arange(len(dist)), scored.text.ids], scored.logprobs, rtol=0, atol=1e-9
    )
    text = "".join(lm.generate("the time", 20, seed=3))
    assert text == "".join(lm.generate("the time", 20, seed=3)) and len(text) == 20


@pytest.mark.parametrize(
    ("token", "line_end", "text"),
    [
        ("char", "space", "The Time,\n\nMachine!\r\nby  Wells\n"),
        ("word", "space", "The Time,\n\nMachine!\r\nby  Wells\n"),
        ("word", "eos", "The Time,\n\nMachine!\r\nby  Wells"),
        ("char", "newline", "The Time,\n\nMachine!\rby  Wells\n"),
    ],
)
def test_a_text_is_read_as_the_data_stages_read_a_split(token, line_end, text):
    tok = TokenizeParams(token=token, line_end=line_end)  # a pre-split corpus: no fractions
    from seqlm.data.corpus import prepare_text

    data = prepare_text({"train": text, "val": text, "test": text}, tok)
    split = data.splits["test"]
    enc = encode_text(text, TextFormat(token, line_end, "textbook"), data.vocab)
    np.testing.assert_array_equal(enc.ids, split.ids)
    assert (enc.characters, enc.oov) == (split.characters, split.oov)
    assert sum(enc.line_characters) == enc.characters
    assert enc.line_of.size == enc.ids.size and enc.lines[0] == 1


def test_each_lines_share_adds_up_to_the_total(run):
    lm = seqlm.load(run["ckpt"])
    total, lines = lm.score_lines("the time traveller\n\nfor so it will be\nconvenient\n")
    assert [x.line for x in lines] == [1, 3, 4]
    assert sum(x.score.tokens for x in lines) == total.tokens
    assert sum(x.score.characters for x in lines) == total.characters
    assert sum(x.score.nll for x in lines) == pytest.approx(total.nll, rel=1e-12)


def test_unknown_characters_are_scored_as_unk_and_counted(run):
    lm = seqlm.load(run["ckpt"])
    mode_none = seqlm.lm.models.NeuralModel(
        "lstm", lm.model, lm.info, lm.vocab, TextFormat("char", "space", "none")
    )
    scored = mode_none.logprobs("Time ß 9")  # the text as it is: "T", "ß" and "9" are unknown
    assert scored.text.oov == 3 and scored.text.unknown.sum() == 3
    assert np.all(np.isfinite(scored.logprobs))
    assert [r["oov"] for r in scored.records()].count(True) == 3


def test_the_top_alternatives_come_from_the_distribution_each_token_was_scored_by(run):
    for path in (run["ckpt"], run["dir"] / "ngram"):
        lm = seqlm.load(path)
        scored = lm.logprobs("the time machine", top=3)
        dist = lm.distributions(scored.text.ids)
        picked = dist[np.arange(len(dist)), scored.text.ids]
        np.testing.assert_allclose(picked, scored.logprobs, rtol=0, atol=1e-9)
        for alts, row in zip(scored.alternatives, dist):
            assert [a.logprob for a in alts] == sorted(row, reverse=True)[:3]


def test_text_with_nothing_to_score_is_refused(run):
    lm = seqlm.load(run["ckpt"])
    with pytest.raises(DataError, match="nothing to score"):
        lm.score("  ,;! \n\n")


def test_generation_follows_its_seed_and_beam_one_is_greedy(run):
    lm = seqlm.load(run["ckpt"])
    a = list(lm.generate("the time", 30, seed=1, top_p=0.9))
    assert a == list(lm.generate("the time", 30, seed=1, top_p=0.9)) and len(a) == 30
    assert a != list(lm.generate("the time", 30, seed=2, top_p=0.9))
    greedy, state = [], None
    state, logp = lm.begin(lm.encode("the time").ids.tolist())
    for _ in range(10):
        logp = logp.copy()
        logp[lm.banned()] = -np.inf
        greedy.append(int(np.argmax(logp)))
        state, logp = lm.advance(state, greedy[-1])
    assert "".join(lm.generate("the time", 10, beam=1)) == "".join(
        lm.vocab.tokens[i] for i in greedy
    )
    with pytest.raises(ParamError, match="beam"):
        lm.generate("the", 5, beam=-1)
    with pytest.raises(ParamError, match="top_p"):
        lm.generate("the", 5, top_p=0.0)


class TableLM(LanguageModel):
    """A model given by a table: the next token's probabilities after the last token."""

    def __init__(self, table: dict[int, Sequence[float]]) -> None:
        tokens = ("<unk>", "<bos>", "a", "b", "c")
        super().__init__("table", Vocab(tokens, (0,) * 5), TextFormat("char", "space", "none"))
        self.table = {k: np.log(np.asarray(v, dtype=np.float64)) for k, v in table.items()}

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        prev = [self.bos_id, *np.asarray(ids).tolist()[:-1]]
        return np.array([self.table[p][t] for p, t in zip(prev, ids)])

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        last = ids[-1] if len(ids) else self.bos_id
        return last, self.table[last]

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        return token_id, self.table[token_id]


def test_beam_search_finds_the_best_sequence_greedy_decoding_misses():
    # after <bos>: a 0.5, b 0.4; after a: flat over a b c; after b: c 0.9. Best pair: "b c" (0.36),
    # greedy takes "a" first (0.5 · 1/3 at best = 0.17).
    with np.errstate(divide="ignore"):
        lm = TableLM(
            {
                1: [0.0, 0.0, 0.5, 0.4, 0.1],
                2: [0.0, 0.0, 0.34, 0.33, 0.33],
                3: [0.0, 0.0, 0.05, 0.05, 0.9],
                4: [0.0, 0.0, 0.4, 0.3, 0.3],
            }
        )
        assert "".join(lm.generate("", 2, beam=1)) == "aa"
        assert "".join(lm.generate("", 2, beam=2)) == "bc"
        assert "".join(lm.generate("", 3, beam=2)) == "bca"


def test_top_p_keeps_the_fewest_tokens_that_reach_the_mass():
    q = sampling_distribution(np.array([0.5, 0.3, 0.15, 0.05]), top_p=0.8)
    np.testing.assert_allclose(q, [0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    q = sampling_distribution(np.array([0.5, 0.3, 0.15, 0.05]), top_p=0.81)
    assert np.count_nonzero(q) == 3


def test_an_arpa_file_scores_each_line_as_a_sentence(run, tmp_path):
    from seqlm.ngram import fit_sentence_model
    from seqlm.ngram.arpa import read_arpa
    from seqlm.ngram.sentences import SentenceVocab

    lines = [line.split() for line in ["the time machine", "the time traveller"] * 3]
    vocab = Vocab(("<unk>", "<bos>", "the", "time", "machine", "traveller"), (0,) * 6)
    model = fit_sentence_model(lines, vocab, 2)
    write_arpa(model, SentenceVocab(vocab).arpa_names(), tmp_path / "m.arpa")
    lm = seqlm.load(tmp_path / "m.arpa")
    scored = lm.logprobs("the time machine\nthe unknown\n")
    arpa = read_arpa(tmp_path / "m.arpa")
    want = [*arpa.score(["the", "time", "machine"]), *arpa.score(["the", "unknown"])]
    np.testing.assert_allclose(scored.logprobs, np.array(want) * np.log(10), rtol=1e-12)
    assert scored.tokens[-1] == "</s>" and scored.text.oov == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.pt", "does not exist"),
        (lambda d: d, "holds no model"),
        (lambda d: (d / "x.txt").write_text("hello") and d / "x.txt", "not a model seqlm can load"),
        (
            lambda d: (d / "x.pt").write_bytes(b"not a checkpoint") and d / "x.pt",
            "not a readable seqlm checkpoint",
        ),
        (lambda d: (d / "e.json").write_text("{}") and d / "e.json", "not a seqlm ensemble"),
        (
            lambda d: (d / "m.npz").write_bytes(b"PK junk") and d / "m.npz",
            "not a readable seqlm n-gram model",
        ),
    ],
)
def test_what_is_not_a_model_is_refused_saying_why(tmp_path: Path, make, message):
    with pytest.raises(DataError, match=message):
        seqlm.load(make(tmp_path))


def test_a_checkpoint_without_its_text_reading_is_refused(tmp_path):
    _, ckpt, _, _ = train_tiny(tmp_path, TEXT, params=__import__("tiny_pipeline").TINY_TRAIN)
    with pytest.raises(DataError, match="does not carry its vocabulary"):
        seqlm.load(ckpt)


def test_an_ensemble_of_models_reading_other_vocabularies_is_refused(run, tmp_path):
    import json

    from seqlm.lm.load import ensemble_manifest

    other = Vocab((*run["vocab"].tokens, "#"), (*run["vocab"].counts, 1))
    counts = count_stream(run["splits"]["train"].ids, len(other), 2, other.id_of("<bos>"))
    save_ngram(fit_ngram(counts, 2), other, READING, tmp_path / "other.npz")
    members = [
        {"name": "lstm", "path": str(run["ckpt"]), "weight": 0.5},
        {"name": "other", "path": str(tmp_path / "other.npz"), "weight": 0.5},
    ]
    out = tmp_path / "ensemble.json"
    out.write_text(json.dumps(ensemble_manifest(out, members)))
    with pytest.raises(DataError, match="'other' reads another vocabulary"):
        seqlm.load(out)


def test_the_score_command_prints_a_table_per_line_and_the_tokens(run, tmp_path, capsys):
    from seqlm.ops.score import main

    text = tmp_path / "notes.txt"
    text.write_text("the time traveller\n\nwas expounding\n")
    assert main(["--model", str(run["ckpt"]), "--ngram", str(run["dir"] / "ngram"), str(text)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["model", "file", "line", *COLUMNS]
    assert [r.split()[:3] for r in rows[1:]] == [
        [name, str(text), line] for name in ("lstm", "4-gram") for line in ("1", "3", "total")
    ]
    assert main(["--tokens", "--model", str(run["ckpt"]), str(text)]) == 0
    tsv = capsys.readouterr().out.splitlines()
    assert len(tsv) == 1 + seqlm.load(run["ckpt"]).score(text.read_text()).tokens
    assert tsv[1].split("\t")[:4] == ["lstm", str(text), "1", "t"]
    assert main(["--model", str(tmp_path / "none.pt"), str(text)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_generate_command_streams_a_seeded_continuation_and_refuses_bad_settings(run, capsys):
    from seqlm.ops.generate import main

    argv = [
        "--model",
        str(run["ckpt"]),
        "--prompt",
        "The Time",
        "--max-tokens",
        "12",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first and first.startswith("the time")
    assert len(first.rstrip("\n")) == len("the time") + 12
    assert main([*argv, "--beam", "-2"]) == 2
    assert "beam = -2" in capsys.readouterr().err
