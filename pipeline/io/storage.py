"""Filesystems for local paths and S3, built from the run config (credentials never pass through here)."""

from __future__ import annotations

import os

import fsspec
import pyarrow.fs as pafs

from ..config import S3Settings


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> str:
    return os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))


def with_s3_defaults(config: S3Settings) -> S3Settings:
    """Resolve S3 endpoint and region from the driver's environment, so every worker uses the same."""
    endpoint = config.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    region = config.s3_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return config.model_copy(update={"s3_endpoint_url": endpoint, "s3_region": region})


def s3_options(config: S3Settings, *, quick: bool = False) -> dict:
    """fsspec/s3fs options: endpoint, region, profile, anonymous access, and retries with backoff.

    Args:
        config: the run's S3 settings.
        quick: few retries and short timeouts instead (preflight's look at ``--input``).
    """
    config = with_s3_defaults(config)
    pairs = (("endpoint_url", config.s3_endpoint_url), ("region_name", config.s3_region))
    client_kwargs = {k: v for k, v in pairs if v}
    options: dict = {
        "anon": config.s3_anonymous,
        "client_kwargs": client_kwargs,
        "config_kwargs": {"retries": {"max_attempts": 10, "mode": "adaptive"}},
    }
    if quick:  # preflight: an unreachable endpoint fails in seconds, not after ten backed-off tries
        options["config_kwargs"] = {"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 10}
    if config.s3_profile:
        options["profile"] = config.s3_profile
    return options


def storage_options(uri: str, config: S3Settings) -> dict:
    """fsspec options for ``uri``: S3 settings for ``s3://``, nothing for local files."""
    return s3_options(config) if is_s3(uri) else {}


def fsspec_fs(uri: str, config: S3Settings, *, quick: bool = False) -> fsspec.AbstractFileSystem:
    if is_s3(uri):
        # a quick client skips fsspec's instance cache so its short timeouts never reach the run's clients
        return fsspec.filesystem("s3", skip_instance_cache=quick, **s3_options(config, quick=quick))
    return fsspec.filesystem("file")


def url_fs(uri: str, config: S3Settings) -> tuple[fsspec.AbstractFileSystem, str]:
    """An fsspec filesystem and the path inside it: S3 with ``config``'s settings, any other URI fsspec's way."""
    if is_s3(uri):
        return fsspec_fs(uri, config), uri.removeprefix("s3://")
    return fsspec.core.url_to_fs(uri)


def arrow_fs(uri: str, config: S3Settings) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for Ray's readers and our writers."""
    if is_s3(uri):
        handler = pafs.FSSpecHandler(fsspec_fs(uri, config))
        return pafs.PyFileSystem(handler), uri.removeprefix("s3://").rstrip("/")
    return pafs.LocalFileSystem(), local_path(uri)


def forget_listings(fs: pafs.FileSystem, folder: str) -> None:
    """Drop what an fsspec filesystem behind ``fs`` remembers of ``folder`` and everything under it.

    s3fs keeps each directory listing it made (``dircache``) and never refreshes one: a folder listed
    before other processes committed files into it would later deny those files exist when they are
    opened, even though a new listing names them. Local filesystems keep nothing.
    """
    handler = getattr(fs, "handler", None)
    inner = getattr(handler, "fs", None)
    cache = getattr(inner, "dircache", None)
    if cache is None:
        return
    path = inner._strip_protocol(folder).rstrip("/")
    inner.invalidate_cache(path)  # the folder and its parents
    for key in [k for k in list(cache) if k.startswith(path + "/")]:
        cache.pop(key, None)


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])
