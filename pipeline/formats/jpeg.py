"""JPEG decoding inside the inference actor, on its own device (nvJPEG on a GPU, libjpeg-turbo on CPU).

The decode tasks only read each JPEG's header (``actor_size``); the compressed bytes travel to
the actor (a tenth of the decoded size), which decodes a whole batch in one call. Only plain
baseline cases go this way: RGB, no EXIF rotation, within ``--max-pixels`` and one tile. Every
other file, and any JPEG the actor's decoder refuses, takes Pillow's path, so a corrupt file
gets the same error row either way.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:  # torch is imported where it is used: the decode tasks read headers only, never torch
    import torch

EXIF_ORIENTATION = 0x0112


def shorter_side_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """``(height, width)`` scaled so that the shorter side is ``shorter`` (Pillow's rounding)."""
    scale = shorter / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def actor_size(blob: bytes, *, max_pixels: int, resize: int | None, tile: int) -> tuple[int, int] | None:
    """``(height, width)`` of a JPEG the inference actor can decode itself, else ``None``.

    Args:
        blob: the file's bytes; only the header is parsed.
        max_pixels: larger images stay on Pillow's path (which makes them error rows).
        resize: shorter side fed to the model, or ``None``; the fed size must fit one tile.
        tile: ``--tile-size``: tiled images stay on the CPU path.
    """
    if not blob.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(blob))
            plain = image.format == "JPEG" and image.mode == "RGB"
            upright = image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:  # Pillow's path names the problem in the error row
        return None
    height, width = image.height, image.width
    fed = shorter_side_size(height, width, resize) if resize else (height, width)
    if not (plain and upright) or height * width > max_pixels or max(fed) > tile:
        return None
    return height, width


def decode_jpegs(blobs: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Decode on ``device`` to ``[H, W, 3]`` uint8; ``None`` where the decoder refuses a file.

    One batched call (nvJPEG decodes a list at once); if it fails, each file alone, so one
    bad file never costs its neighbours.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its decoders in favour of TorchCodec
        try:
            return [t.permute(1, 2, 0) for t in decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)]
        except (RuntimeError, ValueError):  # torchvision's decoders raise these for a bad file
            if len(tensors) == 1:
                return [None]
        return [decode_jpegs([b], device)[0] for b in blobs]


def resize_on_device(image: torch.Tensor, shorter: int | None) -> torch.Tensor:
    """``[H, W, 3]`` uint8 resized like ``decode.resize_shorter`` (antialiased bilinear), on its device."""
    if not shorter:
        return image
    size = shorter_side_size(image.shape[0], image.shape[1], shorter)
    if size == tuple(image.shape[:2]):
        return image
    import torch
    from torch.nn import functional as F

    x = image.permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
