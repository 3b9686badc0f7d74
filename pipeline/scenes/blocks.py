"""The compressed bytes of a scene's recently read blocks, kept by the reader between windows.

A scene is read row of tiles after row of tiles; neighbouring rows overlap, so the blocks under the overlap
are read twice. Keeping them decoded (GDAL's block cache) costs the decoded size of every block a row of
tiles spans: 293 MiB at 50,000 px RGB, growing with the scene's width. Keeping the bytes read from the file
costs a tenth of that for JPEG tiles (the 50,000 px scene's row of blocks: 7 MB compressed, 77 MB decoded);
the blocks under an overlap are decoded twice (about 1 ms per 512-px JPEG block) and fetched once.

``CachedRanges`` is the rasterio ``opener`` (a ``FileContainer``) over an fsspec filesystem: every read of
a file it opens goes through one LRU of ``(offset, size) -> bytes``, bounded by ``capacity`` bytes. GDAL's
GTiff driver reads a block as one ``seek`` and ``read`` of its byte count, so the same block is the same key.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from rasterio.abc import FileContainer


class CachedRanges(FileContainer):
    """An fsspec filesystem whose opened files share one LRU of the byte ranges read.

    Args:
        fs: the filesystem the bytes come from (local disk, or S3 without read-ahead).
        capacity: bytes kept, at most (the least recently used range goes first).
    """

    def __init__(self, fs, capacity: int) -> None:
        self.fs, self.capacity = fs, capacity
        self.ranges: OrderedDict[tuple, bytes] = OrderedDict()
        self.held = 0  # bytes in ``ranges``
        self.fetched = 0  # bytes read from ``fs`` (what a cache miss cost)

    def open(self, path: str, mode: str = "rb", **kwargs):
        if "r" not in mode or "+" in mode:
            raise ValueError(f"{path}: a scene is opened to be read, not with mode {mode!r}")
        return _CachedFile(self, path, self.fs.open(path, "rb"), self.fs.size(path))

    def get(self, path: str, raw, offset: int, size: int) -> bytes:
        key = (path, offset, size)
        data = self.ranges.get(key)
        if data is not None:
            self.ranges.move_to_end(key)
            return data
        raw.seek(offset)
        data = raw.read(size)
        self.fetched += len(data)
        if len(data) <= self.capacity:
            self.ranges[key] = data
            self.held += len(data)
            while self.held > self.capacity:
                self.held -= len(self.ranges.popitem(last=False)[1])
        return data

    def clear(self) -> None:
        self.ranges.clear()
        self.held = 0

    def size(self, path: str) -> int:
        return self.fs.size(path)

    def mtime(self, path: str) -> int:
        try:
            return int(self.fs.modified(path).timestamp())
        except (NotImplementedError, AttributeError, KeyError):  # S3 without LastModified
            return 0

    def isfile(self, path: str) -> bool:
        return self.fs.isfile(path)

    def isdir(self, path: str) -> bool:
        return self.fs.isdir(path)

    def ls(self, path: str) -> list[str]:
        return self.fs.ls(path, detail=False)

    def rm(self, path: str) -> None:
        raise OSError(f"{path}: a scene is read, never removed, through its reader")


class _CachedFile:
    """A read-only file whose reads are served from its ``CachedRanges``."""

    def __init__(self, ranges: CachedRanges, path: str, raw, size: int) -> None:
        self.ranges, self.path, self.raw, self.size, self.position = ranges, path, raw, size, 0
        self.closed = False

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            offset += self.size
        elif whence == os.SEEK_CUR:
            offset += self.position
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.position
        data = self.ranges.get(self.path, self.raw, self.position, size)
        self.position += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.raw.close()

    def __enter__(self) -> _CachedFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
