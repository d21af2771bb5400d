"""Fetch the corpus: offline mirror first, then the URL; always verify the sha1.

``fetch`` looks for a file named like the URL's base name in the directory that the environment
variable ``SEQLM_MIRROR`` names (the offline mirror), and only goes to the network when the mirror is
unset or lacks the file. ``http(s)://`` and ``file://`` URLs are supported. The file is written to a
temporary path and renamed onto the target only after its checksum matched, so a failed or interrupted
download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DownloadError
from seqlm.core.logs import progress_disabled
from seqlm.params import DownloadParams

log = logging.getLogger(__name__)

MIRROR_ENV = "SEQLM_MIRROR"
"""Environment variable naming a directory of pre-fetched files (offline mirror)."""

CHUNK = 1 << 16


def sha1_of(path: str | os.PathLike[str]) -> str:
    """Hex sha1 of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def url_basename(url: str) -> str:
    """The last path component of ``url`` (the name looked up in the mirror)."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise DownloadError(f"URL {url!r} has no file name to look up in the mirror")
    return name


def mirror_file(url: str, mirror: str | None = None) -> Path | None:
    """The mirror's copy of ``url``, if the mirror is set and has one."""
    mirror = os.environ.get(MIRROR_ENV) if mirror is None else mirror
    if not mirror:
        return None
    candidate = Path(mirror) / url_basename(url)
    return candidate if candidate.is_file() else None


def _copy_stream(src: BinaryIO, dst: BinaryIO, total: int | None, desc: str) -> int:
    written = 0
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=desc, disable=progress_disabled()
    ) as bar:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return written


def _fetch_http(url: str, dst: Path, timeout_s: float, retries: int) -> None:
    """GET ``url`` into ``dst``, retrying transient failures (timeouts, 5xx, refused connections)."""
    delay = 1.0
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "seqlm"})
            with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dst, "wb") as out:
                length = resp.headers.get("Content-Length")
                _copy_stream(resp, out, int(length) if length else None, url_basename(url))
            return
        except urllib.error.HTTPError as e:
            if e.code < 500 or attempt == retries:
                raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
            reason = f"HTTP {e.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            if attempt == retries:
                raise DownloadError(
                    f"download of {url} failed after {retries + 1} attempt(s): "
                    f"{getattr(e, 'reason', e)}"
                ) from e
            reason = str(getattr(e, "reason", e))
        log.warning(
            "attempt %d/%d for %s failed (%s); retrying in %.0fs",
            attempt + 1,
            retries + 1,
            url,
            reason,
            delay,
        )
        time.sleep(delay)
        delay *= 2


def _fetch_file_url(url: str, dst: Path) -> None:
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not src.is_file():
        raise DownloadError(f"download of {url} failed: no such file {str(src)!r}")
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        _copy_stream(fin, fout, src.stat().st_size, src.name)


def fetch(params: DownloadParams, out: str | os.PathLike[str]) -> Path:
    """Fetch ``params.url`` (or its mirror copy) into ``out``, verified against ``params.sha1``."""
    out = Path(out)
    out.unlink(missing_ok=True)  # never leave a stale corpus beside a failed fetch
    with atomic_path(out) as tmp:
        local = mirror_file(params.url)
        if local is not None:
            log.info("using mirror copy %s (from %s)", local, MIRROR_ENV)
            shutil.copyfile(local, tmp)
            source = f"{params.url} (mirror copy {local})"
        else:
            scheme = urllib.parse.urlparse(params.url).scheme
            if scheme == "file":
                _fetch_file_url(params.url, tmp)
            else:
                _fetch_http(params.url, tmp, params.timeout_s, params.retries)
            source = params.url
        size = tmp.stat().st_size
        if size == 0:
            raise DownloadError(f"download of {source} gave an empty file")
        actual = sha1_of(tmp)
        if actual != params.sha1.lower():
            raise DownloadError(
                f"checksum mismatch for {source}: expected sha1 {params.sha1.lower()}, got {actual}"
            )
    log.info("fetched %s: %d bytes, sha1 %s", out, size, actual)
    return out
