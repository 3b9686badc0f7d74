"""The registered checkpoints: where each is published, whether it is here, and fetching one on request.

A segmentation run never downloads; ``python -m jobs.weights fetch NAME`` does, when a user asks.
The file is streamed to a temporary name beside its destination, its sha256 checked, and only then
moved into place: the job never finds a partial or wrong file where it looks.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request

from .registry import WEIGHTS
from .weights import WEIGHTS_DIR_ENV, WeightsError, resolve_uri


class FetchError(RuntimeError):
    """The checkpoint could not be fetched; the message says where to put it by hand."""


def weights_table() -> list[dict]:
    """Every registered weights record: model, classes, source URL, sha256, local path and whether it is there."""
    rows = []
    for name, record in sorted(WEIGHTS.items()):
        path = resolve_uri(record.uri) if record.uri else None
        rows.append({
            "name": name,
            "model": record.arch,
            "classes": len(record.categories),
            "url": record.url or "(shipped with the package)",
            "sha256": record.sha256 or "",
            "path": path,
            "present": bool(path and os.path.isfile(path)),
        })  # fmt: skip
    return rows


def fetch(name: str, *, mirror: str | None = None, timeout: float = 60) -> str:
    """Download registered checkpoint ``name`` into the weights folder; return its path.

    Args:
        name: a registered weights name.
        mirror: a base URL to take the file from instead of its official host (an internal mirror).
        timeout: seconds to wait for the server.
    """
    if name not in WEIGHTS:
        raise WeightsError(f"unknown weights {name!r}: registered are {', '.join(sorted(WEIGHTS))}")
    record = WEIGHTS[name]
    path = resolve_uri(record.uri)
    if not record.url:
        return path  # shipped inside the package
    url = f"{mirror.rstrip('/')}/{record.url.rsplit('/', 1)[-1]}" if mirror else record.url
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".fetching-", dir=os.path.dirname(path))
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as source:
            while chunk := source.read(1 << 22):
                digest.update(chunk)
                out.write(chunk)
    except Exception as exc:  # offline, refused, not found: say how to put the file there by hand
        os.unlink(partial)
        raise FetchError(
            f"cannot download {url} ({type(exc).__name__}: {exc}). On a machine without internet, download it "
            f"elsewhere and put it at {path} (or in the folder named by ${WEIGHTS_DIR_ENV})"
        ) from None
    if record.sha256 and not digest.hexdigest().startswith(record.sha256.lower()):
        os.unlink(partial)
        raise FetchError(
            f"{url} has sha256 {digest.hexdigest()}, expected {record.sha256}: not kept (a wrong or corrupt file)"
        )
    os.replace(partial, path)
    return path
