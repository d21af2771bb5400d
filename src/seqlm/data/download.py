"""Fetch the corpus (one file, or the published train/val/test files): offline mirror first, then
the URL; always verify the sha1.

``fetch`` looks first in the directory that the environment variable ``SEQLM_MIRROR`` names (the
offline mirror), and only goes to the network when the mirror is unset or has no file for the URL.
A URL is looked up by its path: the path's trailing components, the longest suffix first, so that
``https://host/examples/data/wikitext-2/train.txt`` tries ``examples/data/wikitext-2/train.txt``,
``data/wikitext-2/train.txt``, ``wikitext-2/train.txt``, then ``train.txt`` under the mirror. Files
that keep a common name (``train.txt``, ``input.txt``) are told apart by a subfolder named like the
URL's (``wikitext-2/train.txt``), while a mirror of distinct names (``timemachine.txt``,
``ptb.train.txt``) holds them at its top level. Of the candidates that exist, the first whose sha1
matches is used, so a same-named file of another corpus is never taken silently; when names match but
no sha1 does, the error lists every mirror file tried with its sha1 (the network is not tried then:
the mirror is meant to be complete). ``http(s)://`` and ``file://`` URLs are supported. The file is
written to a temporary path and renamed onto the target only after its checksum matched, so a failed
or interrupted download leaves nothing behind.
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
from seqlm.core.errors import DataError, DownloadError
from seqlm.core.logs import progress_disabled
from seqlm.data.split import SPLITS
from seqlm.params import SINGLE, DownloadParams, Source

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
    """The last path component of ``url`` (the shortest name looked up in the mirror)."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise DownloadError(f"URL {url!r} has no file name to look up in the mirror")
    return name


def mirror_names(url: str) -> list[str]:
    """The relative paths under the mirror that may hold ``url``: its path's trailing components,
    the longest suffix first (``a/b/c.txt``, ``b/c.txt``, ``c.txt``).

    Only the trailing run of plain components counts: an empty one, ``.``, ``..`` or one holding a
    path separator once unquoted ends it, so no candidate can point outside the mirror."""
    parts: list[str] = []
    for raw in reversed(urllib.parse.urlparse(url).path.split("/")):
        part = urllib.parse.unquote(raw)
        if part in ("", ".", "..") or "/" in part or "\\" in part:
            break
        parts.insert(0, part)
    if not parts:
        raise DownloadError(f"URL {url!r} has no file name to look up in the mirror")
    return ["/".join(parts[i:]) for i in range(len(parts))]


def mirror_file(url: str, mirror: str | None = None, sha1: str | None = None) -> Path | None:
    """The mirror's copy of ``url``, if the mirror is set and has one (:func:`mirror_names`).

    With ``sha1``, the first candidate whose sha1 matches; a DownloadError listing the files tried
    when some exist and none matches. Without, the first (longest) candidate that exists."""
    mirror = os.environ.get(MIRROR_ENV) if mirror is None else mirror
    if not mirror:
        return None
    candidates = [Path(mirror) / name for name in mirror_names(url)]
    found = [path for path in candidates if path.is_file()]
    if sha1 is None or not found:
        return found[0] if found else None
    tried = []
    for path in found:
        actual = sha1_of(path)
        if actual == sha1.lower():
            return path
        tried.append(f"{path} (sha1 {actual})")
    raise DownloadError(
        f"checksum mismatch for {url} in the mirror {MIRROR_ENV}={mirror}: expected sha1 "
        f"{sha1.lower()}, tried {'; '.join(tried)} (the names looked up, longest first: "
        f"{', '.join(mirror_names(url))})"
    )


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
    """Fetch a one-file corpus (``params.url``, or its mirror copy) into ``out``, verified."""
    ((_, source),) = params.sources().items()
    return fetch_source(source, out, params.timeout_s, params.retries)


def corpus_path(directory: str | os.PathLike[str], name: str) -> Path:
    """A corpus file in the download or clean stage's folder: ``corpus.txt``, or ``train.txt`` ...."""
    return Path(directory) / f"{name}.txt"


def corpus_paths(directory: str | os.PathLike[str]) -> list[Path]:
    """Every file such a folder may hold (what a stage removes before it writes)."""
    return [corpus_path(directory, name) for name in (SINGLE, *SPLITS)]


def corpus_files(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """The corpus files in a folder named by :func:`corpus_path`: ``corpus`` (one file, split later by
    fractions) or ``train``, ``val`` and ``test`` (pre-split); anything else is a DataError."""
    single = corpus_path(directory, SINGLE)
    splits = {name: corpus_path(directory, name) for name in SPLITS}
    present = [name for name, p in splits.items() if p.is_file()]
    if single.is_file() and not present:
        return {SINGLE: single}
    if len(present) == len(SPLITS) and not single.is_file():
        return splits
    found = (
        sorted(p.name for p in Path(directory).glob("*.txt")) if Path(directory).is_dir() else []
    )
    raise DataError(
        f"{str(directory)!r} holds {found or 'no corpus files'}; expected {single.name} (one file) "
        f"or {', '.join(p.name for p in splits.values())} (pre-split)"
    )


def fetch_corpus(params: DownloadParams, raw_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Fetch every file of the corpus into ``raw_dir`` (:func:`corpus_path`), each verified.

    All or nothing: when one file fails (its sha1, say), the ones already fetched are removed and
    the error names the file."""
    fetched: dict[str, Path] = {}
    try:
        for name, source in params.sources().items():
            try:
                fetched[name] = fetch_source(
                    source, corpus_path(raw_dir, name), params.timeout_s, params.retries
                )
            except DownloadError as e:
                raise DownloadError(f"the {name} file: {e}") from e
    except BaseException:
        for path in fetched.values():
            path.unlink(missing_ok=True)
        raise
    return fetched


def fetch_source(
    source: Source, out: str | os.PathLike[str], timeout_s: float, retries: int
) -> Path:
    """Fetch ``source.url`` (or its mirror copy) into ``out``, verified against ``source.sha1``."""
    out = Path(out)
    out.unlink(missing_ok=True)  # never leave a stale corpus beside a failed fetch
    with atomic_path(out) as tmp:
        local = mirror_file(source.url, sha1=source.sha1)
        if local is not None:
            log.info("using mirror copy %s (from %s)", local, MIRROR_ENV)
            shutil.copyfile(local, tmp)
            origin = f"{source.url} (mirror copy {local})"
        else:
            scheme = urllib.parse.urlparse(source.url).scheme
            if scheme == "file":
                _fetch_file_url(source.url, tmp)
            else:
                _fetch_http(source.url, tmp, timeout_s, retries)
            origin = source.url
        size = tmp.stat().st_size
        if size == 0:
            raise DownloadError(f"download of {origin} gave an empty file")
        actual = sha1_of(tmp)
        if actual != source.sha1.lower():
            raise DownloadError(
                f"checksum mismatch for {origin}: expected sha1 {source.sha1.lower()}, got {actual}"
            )
    log.info("fetched %s: %d bytes, sha1 %s", out, size, actual)
    return out
