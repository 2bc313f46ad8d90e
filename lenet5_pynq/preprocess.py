"""Bring any picture of one digit into MNIST form, the way MNIST itself was made.

LeCun et al. took each NIST digit, scaled it to fit a 20x20 box keeping its aspect ratio (the
anti-aliasing gives the grey levels), and placed it in a 28x28 frame so that its centre of mass
sits at the centre.  MNIST digits are light ink (up to 255) on a black (0) background.  A
photograph or a drawing is usually the opposite, dark ink on light paper, and much larger; this
module detects that, inverts, crops the ink and repeats LeCun's steps.  An image that is already
MNIST-like comes back (nearly) unchanged.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import network

FRAME = (network.INPUT_HEIGHT, network.INPUT_WIDTH)
FIT = 20  # MNIST's box for the scaled digit, inside the 28x28 frame
# Where MNIST puts the centre of mass, in pixel indices (measured on the test set: 13.99, 14.01).
CENTRE = (FRAME[0] / 2, FRAME[1] / 2)

MAX_PIXELS = 40_000_000  # a 12 MP phone photo fits; anything larger is refused before decoding
# Larger images are shrunk to about this many pixels a side before any work: a digit that fills
# a twentieth of the photo still keeps 50 pixels (it ends up 20), and a 512 MB board keeps its
# memory.  JPEGs are even decoded at the reduced size.
WORKING_SIDE = 1024
# An image whose ink differs from its paper by less than this (of the full range) is blank.
MIN_CONTRAST = 0.12
# In an image larger than MNIST's frame (a scan, a photo, a JPEG), ink fainter than this (of the
# strongest stroke) is paper texture or compression ringing: it is dropped so that speckles do
# not widen the crop.  At 28x28 every faint rim pixel of an MNIST digit counts and nothing is
# dropped.
NOISE_FLOOR = 0.08
BORDER_FRACTION = 0.05  # width of the strip along the edges that tells the paper's brightness
MAX_FIT_POINTS = 20_000  # of that strip, enough to fit the paper's lighting; more only costs time

# Modes with an alpha channel, or a palette that may have a transparent entry.
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La", "P"}
_WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageError(ValueError):
    """The file is not a readable picture of a digit; the message is one line naming it."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file and bring it into MNIST form.

    Parameters
    ----------
    path
        Any file pillow reads (PNG, JPEG, BMP, GIF, TIFF, ...), in any mode.

    Returns
    -------
    numpy.ndarray
        uint8[28, 28], light ink on black, as `to_mnist` makes it.

    Raises
    ------
    ImageError
        The file is missing, unreadable, not an image, truncated, too large or blank; the
        message starts with the path.
    """
    path = Path(path)
    image = _open(path)
    try:
        return to_mnist(image)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
    finally:
        image.close()


def _open(path: Path) -> Image.Image:
    """The decoded image, upright as its EXIF orientation says; every failure is an ImageError."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    with _pillow_errors_as_image_errors(path):
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file")
        image = Image.open(path)  # reads the header only
    try:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(f"{path}: {width}x{height} pixels is more than {MAX_PIXELS / 1e6:.0f} megapixels")
        image.draft(None, (WORKING_SIDE, WORKING_SIDE))  # JPEG only; others ignore it
        with _pillow_errors_as_image_errors(path):
            image.load()
    except BaseException:
        image.close()
        raise
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError):  # a broken EXIF block must not lose the image
        return image
    if upright is not image:
        image.close()  # multi-frame files (GIF, TIFF) keep theirs open otherwise
    return upright


@contextlib.contextmanager
def _pillow_errors_as_image_errors(path: Path):
    # Pillow only warns between its own pixel limit and twice that; the warning must stop us too.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except ImageError:  # ours already; it is a ValueError, which the last clause would take
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{path}: refused as a possible decompression bomb ({_one_line(e)})") from None
        except PermissionError:
            raise ImageError(f"{path}: permission denied") from None
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file (pillow cannot identify it)") from None
        # Decoders report damaged data as any of these: truncated streams as OSError, bad PNG
        # chunks as SyntaxError, odd headers as ValueError or EOFError.
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{path}: damaged or truncated image ({_one_line(e)})") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def to_mnist(image: Image.Image) -> np.ndarray:
    """An image of one digit, in any pillow mode, as MNIST would have it.

    Steps: gray levels in [0, 1] (transparency composited onto the paper, 16-bit gray scaled,
    not clipped); dark ink on light paper inverted; the paper's brightness (a plane, for uneven
    light) removed and the strongest stroke stretched to full ink; cropped to the ink; scaled to
    fit 20x20 keeping the aspect ratio; placed in 28x28 with its centre of mass at the centre.

    Parameters
    ----------
    image
        A PIL image of a single digit.

    Returns
    -------
    numpy.ndarray
        uint8[28, 28], light ink on black.

    Raises
    ------
    ImageError
        The image has no ink (it is one flat colour, up to noise).
    """
    ink = _ink(_shrink(_gray(image), WORKING_SIDE))
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digit = _fit(digit, FIT)
    return _place_by_centre_of_mass(digit)


def _gray(image: Image.Image) -> np.ndarray:
    """float32[H, W] in [0, 1], 1 = white; transparent areas become the paper."""
    if image.mode in _WIDE_GRAY_MODES:
        return np.asarray(image).astype(np.float32) / np.float32(65535)
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        # 32-bit modes carry 16-bit data (older pillow opens 16-bit PNGs as "I"), converted
        # 8-bit data, or 0..1 (bilevel masks, float TIFFs); the largest value tells which.
        peak = float(values.max())
        full_scale = 65535.0 if peak > 255 else 255.0 if peak > 1 else 1.0
        return np.clip(values / np.float32(full_scale), 0, 1)
    if image.mode == "1":
        image = image.convert("L")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
        gray = np.asarray(rgba.convert("L"), dtype=np.float32) / 255
        return _composite(gray, alpha)
    if image.mode != "L":
        try:
            image = image.convert("L")
        except ValueError:  # pillow has no route to gray from a few modes (LAB, HSV)
            raise ImageError(f"unsupported image mode {image.mode}") from None
    return np.asarray(image, dtype=np.float32) / 255


def _shrink(gray: np.ndarray, side: int) -> np.ndarray:
    """Average whole blocks of pixels so that neither side is much over `side`."""
    factor = -(-max(gray.shape) // side)  # ceiling division
    if factor == 1:
        return gray
    height, width = (n // factor * factor for n in gray.shape)
    blocks = gray[:height, :width].reshape(height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Put the visible strokes on a paper of the opposite brightness.

    A digit drawn on a transparent canvas has no paper colour of its own: black ink would vanish
    on black and white ink on white.  The paper is therefore chosen against the opaque pixels.
    """
    if alpha.min() >= 1:
        return gray
    opaque = alpha > 0.5
    light_strokes = opaque.any() and gray[opaque].mean() > 0.5
    paper = np.float32(0.0 if light_strokes else 1.0)
    # Colours under fully transparent pixels are whatever the editor left there: alpha hides them.
    return gray * alpha + paper * (1 - alpha)


def _ink(gray: np.ndarray) -> np.ndarray:
    """float32 ink in [0, 1], 0 = paper, 1 = the strongest stroke."""
    paper = _paper(gray)
    # Paper darker than the middle of the image's range means MNIST's light ink on dark already.
    light_ink = float(np.median(paper)) < (float(gray.min()) + float(gray.max())) / 2
    if light_ink:
        ink = gray - paper
    else:
        # Paper reflects the light that falls on it and ink a fixed fraction of that, so the
        # ratio, not the difference, stays the same where the page is in shadow.
        ink = (paper - gray) / np.maximum(paper, np.float32(1 / 255))
    np.clip(ink, 0, None, out=ink)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError(f"no ink found: the image is blank (contrast {peak:.0%} of full range)")
    ink /= peak
    if max(ink.shape) > max(FRAME):
        ink[ink < NOISE_FLOOR] = 0
    return ink


def _paper(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness at every pixel: a plane fitted to a strip along the edges.

    Light falls unevenly on a photographed page, and a single paper level would count its
    shaded side as ink.  Strokes that reach the edge must not tilt the plane, so the fit uses
    only pixels near the strip's median, and then only those near the first plane.
    """
    height, width = gray.shape
    strip = max(1, round(BORDER_FRACTION * min(height, width)))
    edge = np.zeros(gray.shape, bool)
    edge[:strip] = edge[-strip:] = True
    edge[:, :strip] = edge[:, -strip:] = True
    rows, cols = np.nonzero(edge)
    step = max(1, rows.size // MAX_FIT_POINTS)
    rows, cols = rows[::step], cols[::step]
    values = gray[rows, cols].astype(np.float64)
    design = np.column_stack([np.ones(rows.size), rows / height - 0.5, cols / width - 0.5])
    residual = values - np.median(values)
    for _ in range(2):
        # 1.4826 * median absolute deviation estimates the paper's noise like a standard
        # deviation; the small floor keeps a perfectly flat border from rejecting everything.
        spread = 1.4826 * float(np.median(np.abs(residual)))
        inliers = np.abs(residual) <= 3 * spread + 2 / 255
        coefficients = np.linalg.lstsq(design[inliers], values[inliers], rcond=None)[0]
        residual = values - design @ coefficients
    level, slope_down, slope_right = coefficients
    down = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    right = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    return np.float32(level) + np.float32(slope_down) * down + np.float32(slope_right) * right


def _fit(digit: np.ndarray, box: int) -> np.ndarray:
    """Scale so that the longer side is `box` pixels, keeping the aspect ratio."""
    height, width = digit.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        # LANCZOS anti-aliases when shrinking, as MNIST's grey rims come from anti-aliasing;
        # its slight overshoot at edges is clipped.
        resized = Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS)
        digit = np.clip(np.asarray(resized, dtype=np.float32), 0, None)
        # A thin stroke shrunk from a large image is grey; MNIST strokes reach full ink.
        digit /= max(float(digit.max()), 1e-6)
    return digit


def _place_by_centre_of_mass(digit: np.ndarray) -> np.ndarray:
    """uint8 frame with the digit's centre of mass at CENTRE (whole-pixel shift, kept inside)."""
    height, width = digit.shape
    mass = float(digit.sum())
    com_row = float((digit.sum(axis=1) * np.arange(height)).sum()) / mass
    com_col = float((digit.sum(axis=0) * np.arange(width)).sum()) / mass
    # A whole-pixel shift leaves the grey levels alone, so an MNIST image maps onto itself.
    top = min(max(round(CENTRE[0] - com_row), 0), FRAME[0] - height)
    left = min(max(round(CENTRE[1] - com_col), 0), FRAME[1] - width)
    frame = np.zeros(FRAME, np.uint8)
    frame[top : top + height, left : left + width] = np.round(np.clip(digit, 0, 1) * 255)
    return frame
