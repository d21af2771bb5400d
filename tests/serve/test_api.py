"""``seqlm serve``'s JSON endpoints through FastAPI's TestClient: what each answers, the scores
being exactly the library's, and a clear JSON error for every bad input, the service serving on."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from serve_support import SlowModel, client_for

from seqlm.lm.base import LanguageModel
from seqlm.sampling import read_prefix

TEXT = "The Time Traveller (for so it will be convenient to speak of him)\nwas expounding.\n"
JSON = {"content-type": "application/json"}


def missing_letters(lm: LanguageModel) -> list[str]:
    """Letters the tiny vocabulary lacks (the tiny text has no j or q)."""
    return [c for c in string.ascii_lowercase if c not in lm.vocab]


def assert_error(response, status: int, *words: str) -> dict:
    """The answer is ``{"error": ...}`` with ``status`` and every one of ``words`` in the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


# --- what each endpoint answers -------------------------------------------------------------------


def test_healthz_lists_the_models(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "models": ["lstm", "ngram", "ensemble"]}


def test_models_describes_each_model_and_the_limits(client, models):
    body = client.get("/api/models").json()
    assert [m["name"] for m in body["models"]] == ["lstm", "ngram", "ensemble"]
    assert body["default"] == "lstm"
    lstm, ngram, ensemble = body["models"]
    assert lstm["kind"] == "neural" and ngram["kind"] == "ngram" and ensemble["kind"] == "ensemble"
    assert ngram["title"] == "4-gram"
    for m in body["models"]:
        assert m["vocab_size"] == len(models["lstm"].vocab) == 27
        assert (m["token"], m["line_end"], m["clean"]) == ("char", "space", "textbook")
    assert ensemble["members"] == [
        {"name": "ngram", "weight": 0.4},
        {"name": "lstm", "weight": 0.6},
    ]
    assert body["limits"] == {
        "max_chars": 20_000,
        "max_tokens": 500,
        "timeout": 10.0,
        "workers": 2,
        "max_body_bytes": 6 * 20_000 + 4096,
        "max_top": 20,
        "max_beam": 64,
    }


@pytest.mark.parametrize("name", ["lstm", "ngram", "ensemble"])
def test_the_score_total_is_the_libraries_score_and_the_lines_add_up_to_it(client, models, name):
    r = client.post("/api/score", json={"model": name, "text": TEXT})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == name
    assert body["total"] == models[name].score(TEXT).to_record()  # every field, to the last bit
    assert [x["line"] for x in body["lines"]] == [1, 2]
    assert math.isclose(sum(x["nll"] for x in body["lines"]), body["total"]["nll"], rel_tol=1e-12)
    assert sum(x["tokens"] for x in body["lines"]) == body["total"]["tokens"]


def test_a_request_without_a_model_is_answered_by_the_first(client, models):
    body = client.post("/api/score", json={"text": TEXT}).json()
    assert body["model"] == "lstm" and body["total"] == models["lstm"].score(TEXT).to_record()


@pytest.mark.parametrize("name", ["lstm", "ngram", "ensemble"])
def test_logprobs_gives_every_token_its_logprob_and_the_top_alternatives(client, models, name):
    body = client.post("/api/logprobs", json={"model": name, "text": TEXT}).json()
    lm = models[name]
    want = lm.logprobs(TEXT, top=5).records()
    assert body["model"] == name
    assert body["total"] == lm.score(TEXT).to_record()
    assert [t["token"] for t in body["tokens"]] == [t["token"] for t in want]
    assert [t["logprob"] for t in body["tokens"]] == [t["logprob"] for t in want]
    for got in body["tokens"]:
        alts = got["alternatives"]
        assert len(alts) == 5  # the default top
        assert [a["logprob"] for a in alts] == sorted((a["logprob"] for a in alts), reverse=True)
    assert {t["line"] for t in body["tokens"]} == {1, 2}


def test_logprobs_top_sets_the_number_of_alternatives_up_to_20(client):
    none = client.post("/api/logprobs", json={"model": "ngram", "text": "the time", "top": 0})
    assert "alternatives" not in none.json()["tokens"][0]
    most = client.post("/api/logprobs", json={"model": "ngram", "text": "the time", "top": 20})
    assert all(len(t["alternatives"]) == 20 for t in most.json()["tokens"])
    over = client.post("/api/logprobs", json={"model": "ngram", "text": "the time", "top": 21})
    body = assert_error(over, 422, "top", "20")
    assert body["errors"] == [
        {"field": "top", "message": "Input should be less than or equal to 20"}
    ]


def test_tokens_the_vocabulary_lacks_are_scored_as_unk_and_counted(client, models):
    lacking = missing_letters(models["lstm"])
    assert lacking, "the tiny vocabulary has every letter: pick another text"
    text = f"the {lacking[0]}uick {lacking[0]}{lacking[-1]}mp\n"
    for name in models:
        body = client.post("/api/logprobs", json={"model": name, "text": text}).json()
        oov = [t for t in body["tokens"] if t["oov"]]
        assert [t["token"] for t in oov] == [lacking[0], lacking[0], lacking[-1]]
        assert body["total"]["oov"] == 3
        assert all(math.isfinite(t["logprob"]) and t["logprob"] < 0 for t in oov)
        assert (
            client.post("/api/score", json={"model": name, "text": text}).json()["total"]["oov"]
            == 3
        )


def test_a_text_in_any_script_is_read_as_the_model_reads_its_corpus(client, models):
    text = "Ünïcödé, 日本語 and the time"  # textbook cleaning keeps the letters a-z
    body = client.post("/api/score", json={"model": "ngram", "text": text}).json()
    assert body["total"] == models["ngram"].score(text).to_record()


def test_generation_with_a_seed_is_reproducible(client, models):
    ask = {"model": "lstm", "prompt": "The TIME", "max_tokens": 30, "temperature": 0.8, "seed": 7}
    first = client.post("/api/generate", json=ask).json()
    again = client.post("/api/generate", json=ask).json()
    assert first["text"] == again["text"] and len(first["tokens"]) == 30
    assert first["text"] == "".join(first["tokens"])
    assert first["prompt"] == "the time"  # as the model read it
    assert first["truncated"] is False and "note" not in first
    assert first["seconds"] >= 0 and first["model"] == "lstm"
    lm = models["lstm"]
    assert first["text"] == "".join(lm.generate("The TIME", 30, temperature=0.8, seed=7))
    other = client.post("/api/generate", json={**ask, "seed": 8}).json()
    assert other["text"] != first["text"]


@pytest.mark.parametrize("name", ["lstm", "ngram", "ensemble"])
def test_beam_search_gives_the_libraries_continuation(client, models, name):
    ask = {"model": name, "prompt": "the time", "max_tokens": 12, "beam": 3}
    body = client.post("/api/generate", json=ask).json()
    assert body["text"] == "".join(models[name].generate("the time", 12, beam=3))


def test_generation_defaults_and_an_empty_prompt(client):
    body = client.post("/api/generate", json={}).json()
    assert body["model"] == "lstm" and body["prompt"] == "" and len(body["tokens"]) == 100


# --- the limits ---------------------------------------------------------------------------------


def test_generation_past_the_timeout_answers_what_it_generated(models):
    slow = SlowModel(models["lstm"], 0.01)  # 10 ms a token: about 20 tokens in 0.2 s
    client = client_for({"slow": slow}, timeout=0.2)
    ask = {"prompt": "the time", "max_tokens": 500, "seed": 3}
    body = client.post("/api/generate", json=ask).json()
    assert body["truncated"] is True
    assert 0 < len(body["tokens"]) < 500
    assert "0.2 s" in body["note"] and "--timeout" in body["note"]
    assert 0.2 <= body["seconds"] < 5
    # what it answers is the start of the untimed generation with that seed
    full = "".join(models["lstm"].generate("the time", 500, seed=3))
    assert full.startswith(body["text"])

    beam = client.post("/api/generate", json={**ask, "beam": 2}).json()
    assert beam["truncated"] is True and beam["tokens"] == []
    assert "beam search gives its tokens only when it ends" in beam["note"]


def test_a_generation_over_max_tokens_is_refused_naming_the_limit(models):
    client = client_for(models, max_tokens=50)
    r = client.post("/api/generate", json={"max_tokens": 51})
    assert_error(r, 422, "max_tokens = 51", "limit of 50", "--max-tokens")
    assert client.post("/api/generate", json={"max_tokens": 50}).status_code == 200


def test_a_text_over_max_chars_is_refused_with_413(models):
    client = client_for(models, max_chars=100)
    r = client.post("/api/score", json={"text": "a" * 101})
    assert_error(r, 413, "101 characters", "limit of 100", "--max-chars")
    r = client.post("/api/logprobs", json={"text": "é" * 101})
    assert_error(r, 413, "101 characters")
    r = client.post("/api/generate", json={"prompt": "a" * 101})
    assert_error(r, 413, "the prompt has 101 characters")
    assert client.post("/api/score", json={"text": "a" * 100}).status_code == 200
    # a text at the limit fits in the body however JSON escapes it
    escaped = '{"text": "' + "\\u0061" * 100 + '"}'  # a, JSON-escaped
    assert client.post("/api/score", content=escaped, headers=JSON).status_code == 200


def test_a_body_over_the_byte_limit_is_refused_with_413(models):
    client = client_for(models, max_chars=100)  # a body may hold 6 * 100 + 4096 bytes
    r = client.post("/api/score", content=b"x" * 4697, headers=JSON)
    assert_error(r, 413, "4,697 bytes", "limit of 4,696 bytes", "--max-chars")
    assert r.headers["connection"] == "close"


# --- bad input: a clear JSON error, and the service goes on -----------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\n", "1984 -- !?", "日本語"])
def test_a_text_with_nothing_to_score_is_a_400(client, text):
    for path in ("/api/score", "/api/logprobs"):
        assert_error(client.post(path, json={"text": text}), 400, "nothing to score")


def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte(client):
    r = client.post("/api/score", content='{"text": "café"}'.encode("latin-1"), headers=JSON)
    assert_error(r, 400, "not UTF-8", "byte 13 (0xe9)")


def test_a_lone_surrogate_is_a_400(client):
    r = client.post("/api/score", content=b'{"text": "the \\ud800 time"}', headers=JSON)
    assert_error(r, 400, "not Unicode text", "character 4", "U+D800")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"text": ', 400, ("not valid JSON", "Expecting value")),
        (b"{'text': 'a'}", 400, ("not valid JSON",)),
        (b'["the time"]', 422, ("must be a JSON object",)),
        (b'"the time"', 422, ("must be a JSON object",)),
        (b"", 422, ("must be a JSON object",)),
        (b'{"text": 5}', 422, ("text: Input should be a valid string",)),
        (b'{"txt": "a"}', 422, ("text: Field required", "txt: Extra inputs are not permitted")),
        (b'{"text": "a", "model": 3}', 422, ("model: Input should be a valid string",)),
    ],
)
def test_a_body_that_is_not_a_score_request_is_refused(client, body, status, words):
    r = client.post("/api/score", content=body, headers=JSON)
    got = assert_error(r, status, *words)
    if status == 422:
        assert got["errors"] and all({"field", "message"} == set(e) for e in got["errors"])


def test_a_form_post_is_told_to_send_json(client):
    r = client.post("/api/score", data={"text": "the time"})
    assert_error(r, 422, "JSON object", "Content-Type: application/json")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"beam": 65}, "beam"),
        ({"beam": -1}, "beam"),
        ({"seed": -1}, "seed"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_bad_generation_settings_are_422s_naming_the_field(client, settings, field):
    r = client.post("/api/generate", json={"prompt": "the time", **settings})
    body = assert_error(r, 422, f"{field}: ")
    assert [e["field"] for e in body["errors"]] == [field]


def test_nan_and_infinity_are_refused(client):
    r = client.post("/api/generate", content=b'{"temperature": NaN}', headers=JSON)
    assert_error(r, 422, "temperature: Input should be a finite number")
    r = client.post("/api/generate", content=b'{"temperature": Infinity}', headers=JSON)
    assert_error(r, 422, "temperature: Input should be a finite number")


def test_an_unknown_model_is_a_404_listing_the_models(client):
    for path, body in [
        ("/api/score", {"text": "a"}),
        ("/api/logprobs", {"text": "a"}),
        ("/api/generate", {}),
    ]:
        r = client.post(path, json={**body, "model": "gpt"})
        got = assert_error(r, 404, "no model named 'gpt'", "lstm, ngram, ensemble")
        assert got["models"] == ["lstm", "ngram", "ensemble"]


def test_an_unknown_path_or_method_is_a_json_error(client):
    assert_error(client.get("/api/nothing"), 404, "no such page: /api/nothing")
    assert_error(client.get("/api/score"), 405, "Method Not Allowed")


def test_a_model_that_fails_is_a_500_and_the_service_goes_on(models):
    class Broken(SlowModel):
        def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
            raise RuntimeError("out of memory")

    client = client_for({"broken": Broken(models["ngram"], 0.0), "ngram": models["ngram"]})
    assert_error(client.post("/api/score", json={"text": "the time"}), 500, "RuntimeError")
    assert client.post("/api/score", json={"model": "ngram", "text": "a"}).status_code == 200


def test_the_service_answers_after_every_kind_of_bad_input(client, models):
    bad = [
        client.post("/api/score", content=b"\xff\xfe", headers=JSON),
        client.post("/api/score", content=b"{", headers=JSON),
        client.post("/api/score", json={"text": ""}),
        client.post("/api/generate", json={"max_tokens": 10**6}),
        client.post("/api/logprobs", json={"model": "nope", "text": "a"}),
    ]
    assert [r.status_code for r in bad] == [400, 400, 400, 422, 404]
    assert client.get("/healthz").status_code == 200
    body = client.post("/api/score", json={"text": TEXT}).json()
    assert body["total"] == models["lstm"].score(TEXT).to_record()


# --- the page's files ---------------------------------------------------------------------------


def test_the_page_and_its_files_are_served_from_the_server_only(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "/static/app.js" in html and "/static/style.css" in html
    for path in ("/static/app.js", "/static/style.css"):
        r = client.get(path)
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text, path
    assert "http://" not in html and "https://" not in html


def test_the_openapi_schema_lists_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert {"/healthz", "/api/models", "/api/score", "/api/logprobs", "/api/generate"} <= set(
        schema["paths"]
    )
    assert "ScoreRequest" in schema["components"]["schemas"]
    # no interactive docs: their scripts would come from a CDN, and the service works offline
    assert client.get("/docs").status_code == 404


def test_read_prefix_is_what_generate_reports_as_the_prompt(client, models):
    lm = models["ngram"]
    body = client.post("/api/generate", json={"model": "ngram", "prompt": "Hello, World!"}).json()
    assert body["prompt"] == read_prefix("Hello, World!", lm.fmt, lm.vocab).text == "hello world"
