"""Object storage: inputs and outputs given as URLs (``s3://``, ``gs://``, ``abfs://``, ...).

Local paths stay plain paths, read and written exactly as before. A URL goes through
`fsspec <https://filesystem-spec.readthedocs.io>`_: the protocol's package (``s3fs``,
``gcsfs``, ``adlfs``; ``memory://`` is built in) is imported on first use and finds its
credentials the usual way (environment variables, the provider's config files, instance
metadata). poisonscan never takes a credential on the command line.

Everything here passes URLs around as strings, never as file-system objects, so the
descriptions of work that the Dask engine ships to its workers stay small and portable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
#: The package that provides each common protocol (for the error message when missing).
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs",
             "abfss": "adlfs", "az": "adlfs", "hdfs": "pyarrow", "http": "aiohttp",
             "https": "aiohttp"}


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL with a scheme (``s3://bucket/key``), not a local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def filesystem(url: str):
    """``(fsspec_filesystem, path_without_protocol)`` of a URL.

    Raises
    ------
    InputError
        The protocol is unknown or its package is not installed.
    """
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise InputError("URLs need the fsspec package: pip install fsspec", path=url) from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        scheme = _SCHEME.match(url).group(1).lower()
        package = _PACKAGES.get(scheme, f"the fsspec backend of {scheme}://")
        raise InputError(f"{scheme}:// URLs need {package}: pip install {package}",
                         path=url) from None
    except ValueError as exc:
        raise InputError(f"unsupported URL: {exc}", path=url) from None


def local_path(path) -> Path | None:
    """The resolved local path of a path or a ``file://`` URL (``None`` for other stores)."""
    text = str(path)
    if not is_url(text):
        return Path(text).resolve()
    if text.lower().startswith("file://"):
        return Path(filesystem(text)[1]).resolve()
    return None


def join(base: str, name: str) -> str:
    """``base/name`` for a URL or a local path."""
    if is_url(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def open_input(path, *, compression: str | None = None):
    """A binary file object reading ``path`` (a URL or a local path).

    Parameters
    ----------
    compression : {"infer", None}
        ``"infer"`` decompresses by file extension (``.gz``, ``.bz2``, ``.zst``).
    """
    if is_url(path):
        fs, inner = filesystem(path)
        return fs.open(inner, "rb", compression=compression)
    if compression == "infer":
        import pyarrow as pa
        return pa.input_stream(str(path), compression="detect")
    return open(path, "rb")


def open_output(path):
    """A binary file object writing ``path`` (a URL or a local path; parents created)."""
    if is_url(path):
        fs, inner = filesystem(path)
        return fs.open(inner, "wb")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "wb")


def make_dirs(path) -> None:
    """Create directory ``path`` (a no-op on object stores without directories)."""
    if is_url(path):
        fs, inner = filesystem(path)
        fs.makedirs(inner, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def expand(text: str) -> list[str]:
    """The data files a URL names: itself, every file under it (a "directory"), or its
    glob matches; sorted, hidden and ``_``-prefixed names under a directory skipped.

    Raises
    ------
    InputError
        Nothing there.
    """
    from .sources import format_of

    fs, inner = filesystem(text)

    def url(p: str) -> str:
        return p if is_url(p) else fs.unstrip_protocol(p)

    try:
        if any(ch in inner for ch in "*?["):
            found = sorted(p for p in fs.glob(inner) if fs.isfile(p))
            if not found:
                raise InputError("no file matches this pattern", path=text)
            return [url(p) for p in found]
        if fs.isdir(inner):
            root = inner.rstrip("/")
            found = sorted(p for p in fs.find(inner) if format_of(p) is not None and not any(
                part.startswith((".", "_")) for part in p[len(root):].strip("/").split("/")))
            if not found:
                raise InputError("directory holds no CSV or Parquet file", path=text)
            return [url(p) for p in found]
        if fs.isfile(inner):
            return [text]
    except (OSError, PermissionError) as exc:
        raise InputError(f"cannot list: {exc}", path=text) from None
    raise InputError("no such file or directory", path=text)
