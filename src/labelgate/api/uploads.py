"""Uploaded files: safe names, bounded sizes, images decoded without trusting them.

- **Names.** A file name is a relative POSIX path of at most 1000 characters whose parts
  are neither empty, ``.`` nor ``..``; no NUL or control character, no backslash, no drive
  letter, no leading ``/``. The stored path is resolved again and must lie inside the
  project's image folder (defence in depth against symlinks planted there).
- **Sizes.** Each file is read in chunks and refused with 413 as soon as it passes the limit,
  so an oversized upload never fills memory or disk.
- **Images.** Pillow opens the header, the pixel count is checked against the limit
  *before* anything is decoded (a decompression bomb is a small file with a huge size), then
  ``verify()`` checks the file's structure; only JPEG, PNG, WebP, TIFF and BMP pass. The file
  is written atomically (temp file in the target folder, fsync, ``os.replace``).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image

from labelgate.errors import LabelgateError

__all__ = [
    "IMAGE_FORMATS",
    "UploadRejected",
    "UploadedImage",
    "check_image",
    "read_limited",
    "safe_name",
    "store_file",
]

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP"})
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UploadRejected(LabelgateError):
    """An uploaded file is refused; ``status`` is 413 (too large) or 422 (bad content)."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class UploadedImage:
    """A validated image: its safe relative name, size in pixels and bytes."""

    name: str
    width: int
    height: int
    size_bytes: int


def safe_name(name: str | None) -> str:
    """The file name as a safe relative POSIX path, or :class:`UploadRejected`.

    Examples
    --------
    >>> safe_name("street/0001.jpg")
    'street/0001.jpg'
    >>> safe_name("../etc/passwd")
    Traceback (most recent call last):
    ...
    labelgate.api.uploads.UploadRejected: file name '../etc/passwd': '..' is not allowed
    """
    if not name:
        raise UploadRejected("a file needs a name")
    shown = name[:100]
    if len(name) > 1000:
        raise UploadRejected(f"file name {shown!r}...: longer than 1000 characters")
    if _BAD_CHARS.search(name):
        raise UploadRejected(
            f"file name {shown!r}: control characters, NUL and backslashes are not allowed"
        )
    if name.startswith("/") or _DRIVE.match(name):
        raise UploadRejected(f"file name {shown!r}: absolute paths are not allowed")
    parts = name.split("/")
    if ".." in parts:
        raise UploadRejected(f"file name {shown!r}: '..' is not allowed")
    if any(p in ("", ".") for p in parts) or any(len(p) > 255 for p in parts):
        raise UploadRejected(f"file name {shown!r}: empty, '.' or over-long path parts")
    return str(PurePosixPath(*parts))


def read_limited(stream: BinaryIO, limit: int, name: str) -> bytes:
    """Read a stream, refusing it (413) as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise UploadRejected(f"{name}: larger than the limit of {limit:,} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def check_image(data: bytes, name: str, *, max_pixels: int) -> UploadedImage:
    """Open an image's header, bound its pixels, verify its structure; never trust it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind = image.format
                if kind not in IMAGE_FORMATS:
                    raise UploadRejected(
                        f"{name}: {kind or 'unknown'} images are not accepted "
                        f"({', '.join(sorted(IMAGE_FORMATS))})"
                    )
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    raise UploadRejected(
                        f"{name}: {width}x{height} pixels is over the limit of {max_pixels:,}"
                    )
                image.verify()
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected(f"{name}: refused as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports a broken file as any of these (UnidentifiedImageError is an OSError)
        raise UploadRejected(f"{name}: not a readable image ({type(exc).__name__})") from exc
    return UploadedImage(name, int(width), int(height), len(data))


def store_file(root: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``root / name`` atomically; the path must stay inside ``root``."""
    root = root.resolve()
    target = (root / safe_name(name)).resolve()
    if not target.is_relative_to(root):
        raise UploadRejected(f"file name {name!r}: resolves outside the upload folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
