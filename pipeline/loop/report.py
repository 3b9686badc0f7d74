"""A visual report of a run's masks table: contact sheet, class distribution, counts and error rows.

Reading the table is ``pipeline.loop.scan``'s; this module draws what it found and writes the report.
"""

from __future__ import annotations

import html
import io
import json
import math
import re

import numpy as np
from PIL import Image, ImageOps

from ..config import RANDOM_WEIGHTS, S3Settings
from ..io.output import MANIFEST
from ..io.schema import MODEL_KEY, RUN_ID_KEY, class_names
from ..io.storage import url_fs
from ..stages.decode import pil_to_rgb
from ..stages.postprocess import decode_png
from .scan import Summary, parquet_images, read_image, sample_rows, scan

NO_DATA = 255
ALPHA = 0.45
THUMB = 256
UNTINTED = ("background", "__background__")  # tinting the class that covers most pixels hides the image


def thumbnail(blob: bytes, size: tuple[int, int]) -> np.ndarray:
    """Decode an image (EXIF orientation applied) straight to ``size`` = (width, height), RGB uint8.

    Args:
        blob: encoded image bytes.
        size: ``(width, height)`` of the result.
    """
    image = Image.open(io.BytesIO(blob))
    image.draft("RGB", (max(size), max(size)))  # JPEG decodes at a reduced scale: big scenes stay cheap
    return np.asarray(
        Image.fromarray(pil_to_rgb(ImageOps.exif_transpose(image))).resize(size, Image.Resampling.BILINEAR)
    )


def palette(size: int) -> np.ndarray:
    """``[max(size, 256), 3]`` uint8 colours: tab20's ten hues, then their light shades, then tab20b/c; 255 black.

    Args:
        size: number of class ids that need a colour.
    """
    from matplotlib import colormaps

    tab20 = np.asarray(colormaps["tab20"].colors)
    base = np.concatenate([tab20[0::2], tab20[1::2], colormaps["tab20b"].colors, colormaps["tab20c"].colors])
    colours = (base[np.arange(max(size, NO_DATA + 1)) % len(base)] * 255).round().astype(np.uint8)
    colours[NO_DATA] = 0
    return colours


def class_name(names: list[str], class_id: int) -> str:
    """The label of a class id: its name, ``no-data`` for 255, else ``class <id>``.

    Args:
        names: class names, index = class id.
        class_id: the id to label.
    """
    if class_id < len(names):
        return names[class_id]
    return "no-data" if class_id == NO_DATA else f"class {class_id}"


def tile(row: dict, blob: bytes | None, names: list[str]) -> tuple[np.ndarray, str]:
    """One contact-sheet tile (image with the mask over it, or the mask alone) and its caption.

    Args:
        row: ``image_id, source, mask_png`` of an ok row.
        blob: the source image's bytes, or ``None`` when it could not be found.
        names: class names, index = class id.
    """
    mask = decode_png(row["mask_png"])
    scale = THUMB / max(mask.shape)
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    small = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)).astype(np.int64)
    colours = palette(int(small.max()) + 1)
    caption = re.split(r"[/#]", row["source"].rstrip("/"))[-1][:36] or row["image_id"][:16]
    image, note = None, "source missing: mask only"
    if blob is not None:
        try:
            image = thumbnail(blob, size)
        except Exception as exc:  # a corrupt or unsupported source is noted on the tile, never fatal
            note = f"cannot decode source ({type(exc).__name__}): mask only"
    if image is None:
        return colours[small], f"{caption}\n{note}"
    tinted = np.ones(len(colours), bool)
    tinted[[i for i, name in enumerate(names) if name in UNTINTED and i < len(tinted)] + [NO_DATA]] = False
    alpha = (tinted[small] * ALPHA)[..., None]
    return (image * (1 - alpha) + colours[small] * alpha).round().astype(np.uint8), caption


def contact_sheet(tiles: list[tuple[np.ndarray, str]], legend: list[tuple[str, np.ndarray]], columns: int) -> bytes:
    """PNG of the tiles in a grid with each caption under its tile and a legend of class colours on top.

    Args:
        tiles: ``(RGB image, caption)`` pairs, at most ``THUMB`` pixels on a side.
        legend: ``(label, RGB uint8 colour)`` pairs.
        columns: tiles per row.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    columns = max(1, min(columns, len(tiles) or 1))
    rows, ncol, side = max(1, math.ceil(len(tiles) / columns)), max(1, min(len(legend), 5)), THUMB / 100
    cell_w, cell_h, legend_h = side + 0.25, side + 0.5, 0.3 + 0.25 * math.ceil(len(legend) / ncol)
    width, height = max(columns * cell_w, 5.0), rows * cell_h + legend_h
    fig = Figure(figsize=(width, height), dpi=100)
    for k, (image, caption) in enumerate(tiles):
        row, col = divmod(k, columns)
        left, bottom = col * cell_w + (cell_w - side) / 2, height - legend_h - row * cell_h - 0.05 - side
        ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
        ax.imshow(image, interpolation="nearest")
        ax.set_anchor("N")  # wide images sit at the top of their cell, the caption right under them
        ax.set_axis_off()
        ax.text(0.5, -0.02, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    if not tiles:
        fig.text(0.5, 0.4, "no successfully segmented images to show", ha="center", fontsize=11)
    # the legend fills columns first: reorder so that it reads left to right, row by row
    order = [
        r * ncol + c for c in range(ncol) for r in range(math.ceil(len(legend) / ncol)) if r * ncol + c < len(legend)
    ]
    handles = [Patch(facecolor=legend[i][1] / 255, edgecolor="0.3", label=legend[i][0]) for i in order]
    if handles:
        fig.legend(handles=handles, loc="upper center", ncol=ncol, frameon=False, fontsize=9)
    return _png(fig)


def distribution_chart(ids: np.ndarray, labels: list[str], pixels: np.ndarray, colours: np.ndarray, ok: int) -> bytes:
    """PNG bar chart of each class's share of all pixels, the largest 40 when there are more.

    Args:
        ids: class ids to show.
        labels: class names, index = class id.
        pixels: pixels per class id over the run.
        colours: ``[>= len(pixels), 3]`` uint8 class colours.
        ok: number of ok images the totals cover (for the title).
    """
    from matplotlib.figure import Figure

    share = 100.0 * pixels / max(int(pixels.sum()), 1)
    shown = ids if len(ids) <= 40 else np.sort(ids[np.argsort(-pixels[ids], kind="stable")[:40]])
    fig = Figure(figsize=(8, 1.2 + 0.28 * max(len(shown), 1)), dpi=100)
    ax = fig.add_subplot()
    bars = ax.barh(np.arange(len(shown)), share[shown], color=colours[shown] / 255, edgecolor="0.3", linewidth=0.5)
    ax.set_yticks(np.arange(len(shown)), [labels[i] for i in shown], fontsize=9)
    ax.invert_yaxis()
    ax.bar_label(bars, [f"{s:.1f}%" if s >= 0.1 or s == 0 else "<0.1%" for s in share[shown]], fontsize=8, padding=2)
    ax.set_xlim(0, max(float(share.max(initial=0)) * 1.15, 1.0))
    ax.set_xlabel("share of all pixels (%)")
    ax.set_title(f"Pixels per class over {ok} successfully segmented images", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def render_html(info: dict, ids: np.ndarray, labels: list[str], pixels: np.ndarray, colours, summary: Summary) -> str:
    """The report page; every value from the data is HTML-escaped.

    Args:
        info: ``model``, ``run_id``, ``note`` (extra line under the title, may be empty) and ``banner``
            (a warning shown above everything, e.g. masks from untrained weights).
        ids: class ids to list.
        labels: class names, index = class id.
        pixels: pixels per class id over the run.
        colours: ``[>= len(pixels), 3]`` uint8 class colours.
        summary: the scan of the masks table.
    """
    esc = html.escape
    share = 100.0 * pixels / max(int(pixels.sum()), 1)
    classes = "".join(
        f"<tr><td>{i}</td><td><span class=sw style='background:#{colours[i].tobytes().hex()}'></span>"
        f"{esc(labels[i])}</td><td>{pixels[i]:,}</td><td>{share[i]:.2f}%</td></tr>"
        for i in ids
    )
    errors = summary.rows - summary.ok
    listed = "".join(f"<tr><td>{esc(str(s))}</td><td>{esc(str(e))}</td></tr>" for s, e in summary.errors)
    more = f"<p>… and {errors - len(summary.errors):,} more.</p>" if errors > len(summary.errors) else ""
    title = esc(f"Segmentation report: {info['model']}, run {info['run_id']}")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{font-family: sans-serif; margin: 2em;}} td, th {{padding: 2px 10px; text-align: left;}}
.banner {{background: #b00020; color: white; padding: 0.8em; font-weight: bold;}}
.sw {{display: inline-block; width: 12px; height: 12px; margin-right: 6px; border: 1px solid #555;}}
</style></head><body>
<h1>{title}</h1>{f"<p class=banner>{esc(info['banner'])}</p>" if info.get("banner") else ""}
{f"<p>{esc(info['note'])}</p>" if info["note"] else ""}
<table><tr><th>images</th><td>{summary.rows:,}</td></tr><tr><th>ok</th><td>{summary.ok:,}</td></tr>
<tr><th>errors</th><td>{errors:,}</td></tr></table>
<h2>Sample ({len(summary.sample)} ok images, first by source)</h2><img src="contact_sheet.png" alt="contact sheet">
<h2>Class distribution</h2><img src="class_distribution.png" alt="class distribution">
<table><tr><th>id</th><th>class</th><th>pixels</th><th>share</th></tr>{classes}</table>
<h2>Errors ({errors:,})</h2><table><tr><th>source</th><th>error</th></tr>{listed}</table>{more}
</body></html>
"""


def write_report(masks: str, out: str | None = None, *, images=24, columns=4, images_root=None, storage=None) -> dict:
    """Write ``index.html``, ``contact_sheet.png`` and ``class_distribution.png`` for a run's output.

    Args:
        masks: the run's output folder or S3 prefix (holding ``masks/`` and ``_manifest.json``).
        out: folder for the report; default ``<masks>/report``.
        images: most ok images on the contact sheet (the first by image_id).
        columns: tiles per row of the contact sheet.
        images_root: folder to look for source images in first (by their trailing path parts).
        storage: S3 settings for ``masks`` and ``out`` (``jobs.report``'s ``--s3-*``); default the environment's.
    """
    storage = storage or S3Settings()
    fs, root = url_fs(masks, storage)
    root = root.rstrip("/")
    manifest = json.loads(fs.cat_file(f"{root}/{MANIFEST}")) if fs.isfile(f"{root}/{MANIFEST}") else {}
    summary = scan(fs, root, images)
    names = class_names(summary.meta) or manifest.get("class_names") or []
    labels = [class_name(names, i) for i in range(max(len(names), len(summary.pixels)))]
    pixels = np.pad(summary.pixels, (0, len(labels) - len(summary.pixels)))
    colours = palette(len(labels))
    ids = np.flatnonzero((np.arange(len(labels)) < len(names)) | (pixels > 0))  # named, or seen (e.g. no-data)
    rows = sample_rows(fs, summary)
    image_column = ((manifest.get("runs") or [{}])[-1].get("config") or {}).get("image_column")
    embedded = parquet_images(rows, image_column, images_root)
    tiles = [tile(r, embedded.get(r["source"]) or read_image(r["source"], images_root), names) for r in rows]
    legend = [
        (labels[i] + (" (not tinted)" if labels[i] in UNTINTED else ""), colours[i]) for i in np.flatnonzero(pixels)
    ]
    runs = len(manifest.get("runs", []))
    info = {
        "model": manifest.get("model") or summary.meta.get(MODEL_KEY, "unknown model"),
        "run_id": manifest.get("run_id") or summary.meta.get(RUN_ID_KEY, "unknown"),
        "note": f"The folder holds rows from {runs} runs; the latest is named above." if runs > 1 else "",
        "banner": RANDOM_WEIGHTS if any(r.get("random_weights") for r in manifest.get("runs", [])) else "",
    }
    out_fs, out_path = url_fs(out or f"{masks.rstrip('/')}/report", storage)
    out_fs.makedirs(out_path, exist_ok=True)
    out_fs.pipe_file(f"{out_path}/contact_sheet.png", contact_sheet(tiles, legend, columns))
    out_fs.pipe_file(f"{out_path}/class_distribution.png", distribution_chart(ids, labels, pixels, colours, summary.ok))
    out_fs.pipe_file(f"{out_path}/index.html", render_html(info, ids, labels, pixels, colours, summary).encode())
    errors = summary.rows - summary.ok
    return {"out": out or f"{masks.rstrip('/')}/report", "rows": summary.rows, "ok": summary.ok, "errors": errors}
