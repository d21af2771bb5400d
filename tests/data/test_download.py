import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from seqlm.core.errors import DownloadError, ParamError
from seqlm.data.download import fetch, url_basename
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


def test_the_real_corpus_passes_its_checksum_through_the_mirror(real_corpus, tmp_path, monkeypatch):
    from seqlm.textbook import TIME_MACHINE_SHA1, TIME_MACHINE_URL

    monkeypatch.setenv("SEQLM_MIRROR", str(real_corpus.parent))
    out = fetch(DownloadParams(url=TIME_MACHINE_URL, sha1=TIME_MACHINE_SHA1), tmp_path / "c.txt")
    assert Path(out).stat().st_size == 178_979
