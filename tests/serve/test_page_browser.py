"""The page of ``seqlm serve`` in real Chromium (Debian's, driven by Playwright, launched as
:mod:`seqlm.ops.plots_check` launches it): it loads from the server alone, colours every token by
the surprisal the API returns, shows a token's probability and alternatives on hover, and
generates. It fails (never skips) where Chromium or Playwright is missing."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from serve_support import LiveServer

from seqlm.ops.plots_check import CHROMIUM_HINT, PLAYWRIGHT_HINT, chromium_path
from seqlm.serve.app import Limits, create_app

# the tiny vocabulary has no j or q: those are scored as <unk>
TEXT = "The Time Traveller smiled round at us.\nThen he quoted a jolly old joke"
EXPECTED_REFUSAL = r"Failed to load resource: the server responded with a status of (400|413|422) "
TOKENS_JS = """els => els.map(e => ({
  token: e.dataset.token,
  logprob: e.dataset.logprob,
  oov: e.classList.contains("oov"),
  background: getComputedStyle(e).backgroundColor,
}))"""


@dataclass
class Browser:
    """The page open on a live server, and what the page did that it should not."""

    server: LiveServer
    page: Any
    errors: list[str] = field(default_factory=list)  # script errors, console.error calls
    outside: list[str] = field(default_factory=list)  # requests to anything but the server

    def console(self, message: Any) -> None:
        """Keep a console error, but not Chromium's note of an API answer of 400, 413 or 422:
        the page asks for those on purpose (a text with nothing to score, too many tokens)."""
        if message.type not in ("error", "assert"):
            return
        if re.match(EXPECTED_REFUSAL, message.text):
            return
        self.errors.append(f"console.{message.type}: {message.text}")

    def api(self, path: str, body: dict) -> dict:
        r = httpx.post(f"{self.server.url}{path}", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def browser(models) -> Iterator[Browser]:
    """Chromium showing the page of a server over the tiny run's three models."""
    chromium = chromium_path()
    if shutil.which(chromium) is None:
        pytest.fail(f"Chromium not found at {chromium}: {CHROMIUM_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"Playwright is not installed ({e}): {PLAYWRIGHT_HINT}")
    with LiveServer(create_app(models, Limits())) as server, sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = launched.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            state = Browser(server, page)
            page.on("pageerror", lambda error: state.errors.append(f"uncaught: {error}"))
            page.on("console", lambda message: state.console(message))

            def only_the_server(route: Any) -> None:
                if route.request.url.startswith(f"{server.url}/"):
                    route.continue_()
                else:
                    state.outside.append(route.request.url)
                    route.abort("internetdisconnected")

            page.route("**/*", only_the_server)
            page.goto(f"{server.url}/", wait_until="load")
            page.wait_for_selector("body[data-ready=true]")
            yield state
        finally:
            launched.close()


@pytest.fixture(scope="module")
def scored(browser: Browser) -> Browser:
    """The page after a learner typed the text and pressed Score."""
    page = browser.page
    first, rest = TEXT[:20], TEXT[20:]
    page.fill("#text", first)
    page.locator("#text").press("End")
    page.keyboard.type(rest)
    page.click("#score-button")
    page.wait_for_selector("body[data-scored]")
    return browser


def rgb(css: str) -> tuple[int, ...]:
    """``rgb(255, 217, 118)`` → (255, 217, 118)."""
    channels = tuple(int(float(x)) for x in re.findall(r"[\d.]+", css)[:3])
    assert len(channels) == 3, css
    return channels


def test_the_page_has_a_column_per_model_and_a_legend(browser):
    page = browser.page
    names = page.eval_on_selector_all(".column", "els => els.map(e => e.dataset.model)")
    assert names == ["lstm", "ngram", "ensemble"]
    assert page.is_visible("#legend")
    assert page.eval_on_selector_all("#legend-ticks span", "els => els.length") >= 2
    assert page.eval_on_selector_all("#gen-model option", "els => els.map(e => e.value)") == names


@pytest.mark.parametrize("name", ["lstm", "ngram", "ensemble"])
def test_each_token_is_coloured_by_the_surprisal_the_api_returns(scored, name):
    tokens = scored.page.eval_on_selector_all(f'.column[data-model="{name}"] .tok', TOKENS_JS)
    want = scored.api("/api/logprobs", {"model": name, "text": TEXT, "top": 5})
    assert [t["token"] for t in tokens] == [w["token"] for w in want["tokens"]]
    assert [float(t["logprob"]) for t in tokens] == [w["logprob"] for w in want["tokens"]]
    assert [t["oov"] for t in tokens] == [w["oov"] for w in want["tokens"]]
    assert sum(t["oov"] for t in tokens) == want["total"]["oov"] == 3  # q, j, j

    bits = [-w["logprob"] / math.log(2) for w in want["tokens"]]
    colours = [rgb(t["background"]) for t in tokens]
    order = sorted(range(len(bits)), key=lambda i: bits[i])
    for cooler, hotter in zip(order, order[1:]):
        # more surprisal: every channel the same or darker, never a lighter colour
        assert all(h <= c for h, c in zip(colours[hotter], colours[cooler])), (
            tokens[cooler],
            tokens[hotter],
        )
    coolest, hottest = order[0], order[-1]
    assert bits[hottest] - bits[coolest] > 1
    assert colours[hottest][1] < colours[coolest][1]  # less green: redder
    summary = scored.page.inner_text(f'.column[data-model="{name}"] .summary')
    assert f"{want['total']['tokens']} tokens" in summary and "3 unknown" in summary


def test_hovering_a_token_shows_its_probability_and_the_alternatives(scored):
    page = scored.page
    want = scored.api("/api/logprobs", {"model": "ngram", "text": TEXT, "top": 5})["tokens"]
    index = next(i for i, t in enumerate(want) if t["oov"])
    page.hover(f'.column[data-model="ngram"] .tok[data-index="{index}"]')
    page.wait_for_selector("#tooltip:not([hidden])")
    tip = page.inner_text("#tooltip")
    p = math.exp(want[index]["logprob"])
    assert "p = " in tip and f"{-math.log2(p):.2f} bits" in tip
    assert "not in the vocabulary" in tip and "ngram expected" in tip.lower()
    alternatives = page.eval_on_selector_all(
        "#tooltip li", "els => els.map(e => [e.dataset.token, +e.dataset.logprob])"
    )
    assert alternatives == [[a["token"], a["logprob"]] for a in want[index]["alternatives"]]
    assert len(alternatives) == 5

    page.mouse.move(0, 0)
    page.wait_for_selector("#tooltip", state="hidden")


def test_a_text_with_nothing_to_score_shows_the_servers_message(browser):
    page = browser.page
    page.fill("#text", "1984!")
    page.click("#score-button")
    page.wait_for_selector("#score-status.error")
    assert "nothing to score" in page.inner_text("#score-status")
    assert "nothing to score" in page.inner_text('.column[data-model="lstm"] .summary')
    page.fill("#text", TEXT)
    page.click("#score-button")
    page.wait_for_selector("#score-status:not(.error)")


def test_the_generate_form_shows_the_continuation(browser):
    page = browser.page
    page.fill("#prompt", "The Time")
    page.select_option("#gen-model", "ngram")
    page.fill("#max-tokens", "30")
    page.fill("#temperature", "0.7")
    page.fill("#seed", "5")
    page.fill("#beam", "0")
    page.click("#generate-button")
    page.wait_for_selector("#generation:not([hidden])")
    want = browser.api(
        "/api/generate",
        {"model": "ngram", "prompt": "The Time", "max_tokens": 30, "temperature": 0.7, "seed": 5},
    )
    assert page.text_content("#generation .gen-prompt") == "the time"
    assert page.text_content("#generation .gen-text") == want["text"] != ""
    assert "30 tokens" in page.inner_text("#generate-status")

    page.fill("#max-tokens", "501")
    page.click("#generate-button")
    page.wait_for_selector("#generate-status.error")
    assert "limit of 500" in page.inner_text("#generate-status")


def test_the_page_made_no_errors_and_no_request_beyond_the_server(scored, tmp_path):
    scored.page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert scored.errors == []
    assert scored.outside == []
