"""The inference stage: a batch of decoded rows grouped by image size, huge images tiled, scene windows
read, for one FCN replica per actor (``replica.Replica``: the model calls)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections import defaultdict

import numpy as np
import ray
import torch
from PIL import Image

from ..config import RunConfig
from ..formats.jpeg import decode_jpegs, resize_on_device
from ..formats.rasters import RasterOptions
from ..grid import NO_TILE, TileRow, is_tile
from ..probe import model_work, probe
from ..rows import ALL_VALID, reasons
from .decode import decode_frames, describe_decode_error, resize_shorter
from .postprocess import encode_png
from .replica import Replica, default_batch_size, stack_images
from .tiles import needs_tiles, segment_tiled

NO_MASK = np.zeros((1, 1), np.uint8)  # the mask cell of an error row, and of a tile row sent as PNG
# pixels per forward call on CPU: measured (fcn8s_mobilenet_v3, one thread, four 1024-px tiles) 1.5 s one
# by one, 2.0 s two at a time, 2.3 s all four, with 0.10 / 0.22 / 0.50 GiB of activations at the peak
CPU_FORWARD_PIXELS = 1024 * 1024


def _heap_trimmer():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    return None


TRIM_HEAP = _heap_trimmer()


class Segmenter(Replica):
    """Loads the model once (``Replica``); ``__call__`` maps decoded rows to masks and per-class statistics.

    Args:
        config: the run configuration (model, weights, device, precision, threads).
        storage: fsspec options for an S3 checkpoint.
        resize: shorter side fed to the model, for the JPEGs this actor decodes itself.
        windows: reads the window of a scene's tile row (``scenes.read.WindowReader``: ``read(source, tile)``
            gives ``(rgb, valid, error)``); those rows come without pixels, and leave with their mask as PNG.
    """

    def __init__(self, config: RunConfig, storage: dict, resize: int | None = None, windows=None) -> None:
        super().__init__(config, storage)
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        self.tile, self.overlap = config.tile_size, config.tile_overlap
        self.batch_size = config.batch_size or default_batch_size(self.device.type == "cuda")
        self.resize, self.max_pixels = resize, config.max_pixels
        self.windows = windows
        self.probed: dict = {}  # this batch's model-work figures (``pipeline.probe``)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with probe("segment", len(batch["image_id"])) as self.probed:
            out = self.call(batch)
        if TRIM_HEAP is not None:  # freed heap back to the OS: an actor's resident memory drifted up by
            TRIM_HEAP(0)  # 0.1 GiB over a 50,000 px scene without it (blocks and PNGs of every size)
        return out

    def call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(batch["image_id"])
        masks = np.empty(rows, dtype=object)
        pixels = np.zeros((rows, self.num_classes), np.int64)
        confidence = np.zeros((rows, self.num_classes), np.float64)
        errors = reasons(batch["error"])
        images, nodata, heights, widths = list(batch["image"]), list(batch["valid"]), batch["height"], batch["width"]
        tiles = batch["tile"] if "tile" in batch else np.tile(NO_TILE, (rows, 1))
        read = self.read_windows(batch["source"], tiles, images, nodata, errors)
        if ("jpeg" in batch and self.decode_jpegs(batch["jpeg"], images, errors)) or read:
            failed = np.array([e is not None for e in errors])  # an undecodable file has no size, as in decode
            heights, widths = (np.where(failed, 0, side).astype(np.int32) for side in (heights, widths))
        groups, tiled = defaultdict(list), []  # same fed and source size: no padding ever changes a result
        for i in range(rows):
            masks[i] = NO_MASK
            if errors[i] is None:
                image = images[i]
                key = (tuple(image.shape), int(heights[i]), int(widths[i]))
                (tiled.append(i) if needs_tiles(image.shape, self.tile) else groups[key].append(i))
        with torch.inference_mode():
            for (shape, height, width), group in groups.items():
                step = self.per_forward(shape[0] * shape[1])
                for index in (group[k : k + step] for k in range(0, len(group), step)):
                    valid = [self.valid(nodata[i], tiles[i]) for i in index]
                    for part, result in self.segment_fitting(images, index, height, width, valid):
                        if result is None:
                            errors[part[0]] = f"out of GPU memory even alone ({height}x{width}): lower --tile-size"
                            continue
                        for j, i in enumerate(part):
                            masks[i] = result[0][j]
                        pixels[part], confidence[part] = result[1], result[2]
            for i in tiled:
                with model_work(self.probed, self.synchronize):
                    masks[i], pixels[i], confidence[i] = self.segment_huge(batch, i, self.valid(nodata[i], tiles[i]))
        pngs = np.full(rows, b"", dtype=object)
        for i in np.flatnonzero(tiles[:, 0] >= 0):  # a scene's tile leaves as PNG, never decoded through the store
            pngs[i], masks[i] = encode_png(masks[i]), NO_MASK
        keep = ("image_id", "source", "source_version", "frame", "crs", "geotransform", "tile", "pixel_area")
        out = {**{k: batch[k] for k in keep if k in batch}, "height": heights, "width": widths}
        node = np.full(rows, self.node_id, dtype=object)  # for the manifest's per-node row counts
        extra = {"error": errors, "mask": masks, "mask_png": pngs, "class_pixels": pixels,
                 "confidence_sum": confidence, "node": node}  # fmt: skip
        return {**out, **extra}

    def per_forward(self, pixels: int) -> int:
        """Images of ``pixels`` each in one forward call: the batch size, and on CPU at most
        ``CPU_FORWARD_PIXELS`` together (a larger batch is slower there, and its activations the peak)."""
        if self.device.type == "cuda":
            return self.batch_size
        return max(1, min(self.batch_size, CPU_FORWARD_PIXELS // max(1, pixels)))

    def read_windows(self, sources, tiles: np.ndarray, images: list, nodata: list, errors: np.ndarray) -> bool:
        """Read the windows of the batch's scene tile rows in place of their placeholders (``windows``).

        Returns whether any was read (its error row has no size). Without ``windows`` the rows carry pixels.
        """
        index = [i for i in np.flatnonzero(is_tile(tiles)) if errors[i] is None]
        if self.windows is None or not index:
            return False
        for i in index:
            image, valid, errors[i] = self.windows.read(sources[i], TileRow.from_vector(tiles[i]))
            if errors[i] is None:
                images[i], nodata[i] = image, ALL_VALID if valid is None else valid
        return True

    def decode_jpegs(self, jpegs: np.ndarray, images: list, errors: np.ndarray) -> bool:
        """Decode the JPEGs the decode tasks left to this actor, in place of their placeholders.

        A file the device's decoder refuses goes through Pillow, so its error row (or image)
        is the one the CPU path gives. Returns whether any file could not be decoded.
        """
        index = [i for i, blob in enumerate(jpegs) if len(blob) and errors[i] is None]
        decoded = decode_jpegs([jpegs[i] for i in index], self.device) if index else []
        for i, image in zip(index, decoded, strict=True):
            if image is not None:
                images[i] = resize_on_device(image, self.resize)
                continue
            try:
                rgb = decode_frames(jpegs[i], self.max_pixels, RasterOptions())[0].rgb
                images[i] = resize_shorter(rgb, self.resize) if self.resize else rgb
            except Exception as exc:  # any decoder failure is this image's error row
                errors[i] = describe_decode_error(exc)
        return any(errors[i] is not None for i in index)

    @staticmethod
    def valid(valid: np.ndarray, tile: np.ndarray) -> np.ndarray | None:
        """The pixels to count: no-data left out (``valid``: a 1x1 True placeholder when every pixel is),
        and for a tile of a scene (``scenes/read``) only the region it owns, built from its ``tile`` row."""
        row = TileRow.from_vector(tile)
        if not row.is_tile:
            return None if valid.all() else valid
        w = row.window
        owned = np.zeros((w.y1 - w.y0, w.x1 - w.x0), bool)
        owned[w.oy0 - w.y0 : w.oy1 - w.y0, w.ox0 - w.x0 : w.ox1 - w.x0] = True
        return owned if valid.size == 1 else owned & valid

    def segment_fitting(self, images: np.ndarray, index: list[int], height: int, width: int, valid: list):
        """Yield ``(rows, result)``; on CUDA out-of-memory the rows are retried in halves.

        Only an image that does not fit even alone gets ``result = None`` (an error row).
        """
        try:
            stack = stack_images([images[i] for i in index], self.device)
            with model_work(self.probed, self.synchronize):
                result = self.segment(stack, height, width, valid[: len(index)])
            yield index, result
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(index) == 1:
                yield index, None
                return
            half = len(index) // 2
            yield from self.segment_fitting(images, index[:half], height, width, valid[:half])
            yield from self.segment_fitting(images, index[half:], height, width, valid[half:])

    def segment_huge(self, batch: dict[str, np.ndarray], i: int, valid: np.ndarray | None):
        """One image larger than a tile: overlap-tile segmentation, then back to the source size."""
        image, height, width = batch["image"][i], int(batch["height"][i]), int(batch["width"][i])
        same_size = image.shape[:2] == (height, width)
        mask, counts, conf = segment_tiled(
            self.forward, image, valid if same_size else None, self.num_classes,
            tile=self.tile, overlap=self.overlap, batch_size=self.per_forward(self.tile * self.tile),
        )  # fmt: skip
        if same_size:
            return mask, counts, conf
        mean = np.divide(conf, counts, out=np.zeros_like(conf), where=counts > 0)
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
        if valid is not None:
            mask = np.where(valid, mask, 255).astype(np.uint8)
        counts = np.bincount(mask[mask != 255].ravel(), minlength=self.num_classes)[: self.num_classes]
        return mask, counts, mean * counts
