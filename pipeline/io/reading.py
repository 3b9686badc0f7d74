"""Reading the bytes of listed inputs in Ray tasks: files, the URIs of a URI list, Parquet rows.

Every failure (a file gone since listing, a 403, an unknown protocol, an input above ``--max-bytes``,
a corrupt Parquet file) becomes that input's error row, never a failed task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import RunConfig
from ..probe import probed
from .schema import parquet_image_tag
from .storage import arrow_fs, fsspec_fs, is_s3, local_path

URI_COLUMNS = ("uri", "path", "source", "url")
FETCH_THREADS = 8  # URIs of a URI list read at once within a task (object stores answer in parallel)


def image_id(source: str) -> str:
    """Stable id of an input: the same source URI always gives the same id."""
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def read_bounded(open_file: Callable, source: str, max_bytes: int, missing: str) -> tuple[bytes, str | None]:
    """The bytes of one input and ``None``, or ``b""`` and why it could not be read.

    At most ``max_bytes + 1`` bytes are ever read, so ``/dev/zero`` or a 50 GB object cost no more.

    Args:
        open_file: opens the input for binary reading.
        source: the input's URI, for messages.
        max_bytes: ``--max-bytes``.
        missing: the reason when the input does not exist.
    """
    try:
        with open_file() as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return b"", missing
    except Exception as exc:  # permissions, a 403 from S3, an unknown protocol, an I/O error
        return b"", f"cannot read {source}: {type(exc).__name__}: {exc}; check the URI and its permissions"
    if len(data) > max_bytes:
        return b"", f"{source} is larger than --max-bytes {max_bytes}; raise --max-bytes to read it"
    return data, None


@probed("read")
def read_files(batch: pa.Table, config: RunConfig, scheme: str) -> pa.Table:
    """Read each listed file; one removed, forbidden or too large since listing becomes its error row."""
    # through fsspec, not pyarrow's FSSpecHandler: that one asks isfile() first and reports a 403 as missing
    sources = [scheme + p for p in batch["path"].to_pylist()]
    read = [
        read_bounded(lambda s=s: open_uri(s, config), s, config.max_bytes,
                     f"{s} was listed but is gone (removed after listing); rerun to retry it")
        for s in sources
    ]  # fmt: skip
    return _read_rows(sources, read, batch["version"])


def _read_rows(sources: list[str], read: list[tuple[bytes, str | None]], versions=None) -> pa.Table:
    blobs, errors = [b for b, _ in read], [e for _, e in read]
    return inputs_table(sources, [image_id(s) for s in sources], blobs, errors, versions)


def open_uri(uri: str, config: RunConfig):
    """Open any URI fsspec knows (``s3://`` with the run's S3 settings, ``https://``, ``gs://``, a path)."""
    if is_s3(uri):
        return fsspec_fs(uri, config).open(uri, "rb")
    if "://" in uri and not uri.startswith("file://"):
        return fsspec.open(uri, "rb").open()
    return open(local_path(uri), "rb")


@probed("read")
def fetch_uris(batch: pa.Table, config: RunConfig, committed: pa.Array) -> pa.Table:
    """Read each listed URI not yet committed, several at once; any failure is that URI's error row."""
    column = next((c for c in (*URI_COLUMNS, "text") if c in batch.column_names), batch.column_names[0])
    listed = [str(u).strip() for u in batch[column].to_pylist()]
    todo = pc.invert(pc.is_in(pa.array([image_id(s) for s in listed], pa.string()), value_set=committed))
    sources = pa.array(listed, pa.string()).filter(todo).to_pylist()

    def fetch(uri: str) -> tuple[bytes, str | None]:
        return read_bounded(lambda: open_uri(uri, config), uri, config.max_bytes,
                            f"listed in the URI list but not found: {uri}")  # fmt: skip

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        read = list(pool.map(fetch, sources))
    return _read_rows(sources, read)


def _bytes_type(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)


def _text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def image_column_problem(schema: pa.Schema, image_column: str, id_column: str | None = None) -> str | None:
    """Why the columns of an input Parquet file are not read, or ``None``.

    Only plain image bytes, a ``{bytes, path}`` struct of them, and string or integer ids are read:
    any other type, an Arrow extension type above all (Ray's ``arrow_pickled_object`` unpickles what
    it holds when read), could run code from an untrusted file.

    Args:
        schema: the file's Arrow schema.
        image_column, id_column: ``--image-column`` and ``--id-column``.
    """
    image = schema.field(image_column).type
    plain = _bytes_type(image)
    struct = pa.types.is_struct(image) and image.get_field_index("bytes") >= 0
    if struct:
        fields = {image.field(i).name: image.field(i).type for i in range(image.num_fields)}
        struct = _bytes_type(fields["bytes"]) and _text_type(fields.get("path", pa.string()))
    if not (plain or struct):
        return f"column {image_column} is {image}: expected image bytes (binary) or a {{bytes, path}} struct"
    if id_column and not (_text_type(ids := schema.field(id_column).type) or pa.types.is_integer(ids)):
        return f"column {id_column} is {ids}: expected string or integer ids"
    return None


def read_parquet_images(batch: pa.Table, config: RunConfig, scheme: str, committed: pa.Array | None = None):
    """Rows of each Parquet file, one row group at a time, each tagged with its row number in the file.

    The row number makes every row's source (``file.parquet#row-17/inner/path.png``) and id unique
    even where a ``{bytes, path}`` column repeats its path, and stable while the file is unchanged.
    A file that cannot be read becomes one error row naming it. Rows whose id is in ``committed``
    (resume) are left out, and a row group with nothing left is skipped before its image bytes are read.
    """
    fs, _ = arrow_fs(config.input, config)
    columns = [config.image_column] + ([config.id_column] if config.id_column else [])
    for file in batch["path"].to_pylist():
        try:
            parquet = pq.ParquetFile(fs.open_input_file(file))
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"no column {', '.join(missing)} (see --image-column, --id-column)")
            if problem := image_column_problem(parquet.schema_arrow, config.image_column, config.id_column):
                raise ValueError(problem)
        except Exception as exc:  # a corrupt or foreign file: its error row, the others go on
            source = f"{scheme}{file}"
            yield inputs_table([source], [image_id(source)], [b""], [f"cannot read Parquet {source}: {exc}"])
            continue
        first = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            resuming = committed is not None and len(committed)
            todo = _uncommitted(parquet, group, first, config, f"{scheme}{file}", committed) if resuming else None
            if todo is None or pc.any(todo).as_py():
                table = parquet.read_row_group(group, columns=columns)
                rows_out = from_parquet(table, first, f"{scheme}{file}", config.image_column, config.id_column)
                yield rows_out if todo is None else rows_out.filter(todo)
            first += rows


def _uncommitted(
    parquet: pq.ParquetFile, group: int, first: int, config: RunConfig, file: str, committed: pa.Array
) -> pa.Array:
    """Which rows of a row group are not committed yet, from its ids alone (no image bytes read)."""
    column = parquet.schema_arrow.field(config.image_column).type
    keys = [config.id_column] if config.id_column else []
    if not keys and pa.types.is_struct(column) and "path" in column.names:
        keys = [f"{config.image_column}.path"]  # the inner path is part of the source, hence of the id
    table = parquet.read_row_group(group, columns=keys) if keys else None
    if config.id_column:
        ids = [str(v) for v in table[config.id_column].to_pylist()]
    else:
        rows = parquet.metadata.row_group(group).num_rows
        inner = pc.struct_field(table[config.image_column], "path").to_pylist() if keys else [None] * rows
        ids = [image_id(f"{file}#{parquet_image_tag(first + i, p)}") for i, p in enumerate(inner)]
    return pc.invert(pc.is_in(pa.array(ids, pa.string()), value_set=committed))


def from_parquet(table: pa.Table, first: int, file: str, image_column: str, id_column: str | None) -> pa.Table:
    """``image_id, source, bytes, error`` of the rows of one row group that starts at row ``first``."""
    column = table[image_column]
    inner_paths = [None] * len(table)
    if pa.types.is_struct(column.type):  # Hugging Face style {bytes, path}
        if "path" in column.type.names:
            inner_paths = pc.struct_field(column, "path").to_pylist()
        column = pc.struct_field(column, "bytes")
    blobs = column.to_pylist()
    sources = [f"{file}#{parquet_image_tag(first + i, inner)}" for i, inner in enumerate(inner_paths)]
    ids = [str(v) for v in table[id_column].to_pylist()] if id_column else [image_id(s) for s in sources]
    return inputs_table(sources, ids, blobs, [None if b is not None else "image bytes are null" for b in blobs])


def inputs_table(sources, ids, blobs, errors, versions=None) -> pa.Table:
    """The rows every source hands on: ``image_id, source, source_version, bytes, error``."""
    return pa.table(
        {
            "image_id": pa.array(ids, pa.string()),
            "source": pa.array(sources, pa.string()),
            "source_version": versions if versions is not None else pa.nulls(len(ids), pa.string()),
            "bytes": blobs if isinstance(blobs, pa.ChunkedArray) else pa.array(blobs, pa.binary()),
            "error": pa.array(errors, pa.string()),
        }
    )
