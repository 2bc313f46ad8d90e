"""Bring any picture of one digit into MNIST form, the way MNIST itself was made.

LeCun et al. took each NIST digit, scaled it to fit a 20x20 box keeping its aspect ratio (the
anti-aliasing gives the grey levels), and placed it in a 28x28 frame so that its centre of mass
sits at the centre.  MNIST digits are light ink (up to 255) on a black (0) background.

A photograph is far from that: dark (or, on a board, light) ink on paper under uneven light,
with the paper's grain, printed lines and specks around a digit that fills anything from a
sixth to most of the frame.  This module first finds the digit the way a person would: it
flattens the lighting (a background estimate at a scale well above the stroke width), tells ink
from paper by a threshold chosen from the picture (Otsu's), takes away the paper's printed lines
(straight, thin, across the whole picture) and keeps the main connected ink, refusing pictures
with no ink or with many marks of like size (a page of text).  Then it repeats LeCun's steps on
that digit alone.  A picture no larger than MNIST's frame is taken as MNIST-like and keeps all
its ink: an MNIST digit comes back unchanged.

The image operations are scipy.ndimage's (grey morphology, labelling, filters, zoom), nothing
newer than scipy 1.8: both PYNQ 3.0 images (armhf and aarch64) ship Ubuntu's python3-scipy 1.8,
and PyPI has wheels for x86-64 and aarch64.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from . import network

FRAME = (network.INPUT_HEIGHT, network.INPUT_WIDTH)
FIT = 20  # MNIST's box for the scaled digit, inside the 28x28 frame
# Where MNIST puts the centre of mass, in pixel indices (measured on the test set: 13.99, 14.01).
CENTRE = (FRAME[0] / 2, FRAME[1] / 2)

MAX_PIXELS = 40_000_000  # a 12 MP phone photo fits; anything larger is refused before decoding
# Larger images are shrunk to about this many pixels squared before any work (a long strip keeps
# its short side): a digit that fills a twentieth of the photo still keeps 50 pixels (it ends up
# 20), and a 512 MB board keeps its memory.  JPEGs are even decoded at the reduced size.
WORKING_SIDE = 1024
# An image whose ink differs from its paper by less than this is blank (of the full range; in a
# photo, of the paper's light there).
MIN_CONTRAST = 0.12
# A picture no larger than MNIST's frame whose strongest stroke reaches this is left at its
# levels (MNIST's own digits peak at 254 or 255); a fainter one is stretched to full ink.
FULL_INK = 250 / 255
BORDER_FRACTION = 0.05  # width of the strip along the edges that tells the paper's brightness
MAX_FIT_POINTS = 20_000  # of that strip, enough to fit the paper's lighting; more only costs time

# Finding the digit in a larger picture (`_find_digit`).
# Light or dark ink: a median filter with a window POLARITY_SCALE of the shorter side is the
# paper; the ink is the tail of what differs from it, looked for at the TAIL-th percentile (a
# thin digit is a thousandth of a photo).
POLARITY_SCALE = 0.35
TAIL = 0.05
# The paper's brightness is estimated with a window this fraction of the shorter side: well
# above any stroke's width (a digit 60% of the frame tall with a marker's strokes is about 0.1).
BACKGROUND_SCALE = 0.25
BACKGROUND_WINDOW = 15  # the estimate runs on a copy reduced so that its window is about this
NOISE_SIGMAS = 4  # ink is at least this many of the paper's noise (standard deviations) above it
MIN_INK = 0.04  # and absorbs at least this fraction of the light, whatever the noise
# Printed lines: straight, within MAX_TILT of the picture's axes, with ink over LINE_COVER of
# their length in the picture; searched for on a copy of about LINE_SIDE pixels a side.
MAX_TILT = 15  # degrees: a rotated page and some perspective
LINE_COVER = 0.75
LINE_SIDE = 256
LOOSE = 0.5  # lines are looked for in ink above this fraction of the threshold
LINE_THICKNESS = 1.5  # ink no thicker across than this many times a line's typical width ...
LINE_STRENGTH = 1.3  # ... and no darker than this many times the lines' cores is the line's,
LINE_CORE = 90  # the cores' ink being this percentile of the ink in the lines' bands
LINE_MAX_THICKNESS = 0.012  # of the picture's size, at least 3 pixels: printed lines are thin
# Choosing the digit among the components (`_main_ink`).
EDGE = 0.012  # how far around a component the paper must be clean, of the picture's size ...
SOFT = 0.5  # ... of the threshold: ink stronger than this there is the light's doing
PART = 0.05  # a component smaller than this fraction of the largest (or of the digit) is a speck
REACH = 0.015  # components closer than this fraction of the picture's size make one mark
RIVAL = 0.3  # marks elsewhere at least this fraction of the digit's area are rivals ...
MAX_RIVALS = 3  # ... and this many of them make a page of text, not one digit
MAX_PIECES = 6  # a mark of this many pieces ...
MAIN_PIECE = 0.35  # ... the largest less than this fraction of it is text (a digit: 1-3, over half)
MIN_DIGIT_SIZE = 0.04  # of the picture's size, below which the largest mark is a speck ...
MIN_DIGIT_PIXELS = 8  # ... as it is below this many pixels
# The digit's strokes (`_strokes`).
STROKE_PERCENTILE = 75  # the ink level that counts as a full stroke, of the digit's pixels
RIM = 0.02  # the soft edge kept beyond the threshold, of the digit's size ...
NOISE_FLOOR = 0.08  # ... where the ink is at least this fraction of a full stroke

_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow 9.0 has only Image.LANCZOS and the like

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
        The file is missing, unreadable, not an image, truncated, too large, blank or not one
        digit; the message starts with the path.
    """
    return load(path).frame


def load(path: str | os.PathLike) -> Digit:
    """Read an image file and find the digit in it: `analyse` of the file, errors as `load_image`."""
    path = Path(path)
    image = _open(path)
    try:
        return analyse(image)
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
    # A broken EXIF block must not lose the image; Pillow 9.0 fails on a TIFF's own EXIF after
    # loading it (its file is closed) with AttributeError.
    except (OSError, SyntaxError, ValueError, AttributeError):
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
            raise ImageError(f"{path}: refused as a possible decompression bomb ({one_line(e)})") from None
        except PermissionError:
            raise ImageError(f"{path}: permission denied") from None
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file (pillow cannot identify it)") from None
        # Decoders report damaged data as any of these: truncated streams as OSError, bad PNG
        # chunks as SyntaxError, odd headers as ValueError or EOFError.
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{path}: damaged or truncated image ({one_line(e)})") from None


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def to_mnist(image: Image.Image) -> np.ndarray:
    """An image of one digit, in any pillow mode, as MNIST would have it.

    See `analyse` for the steps; this is its 28x28 result alone.

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
        The image has no ink (it is one flat colour, up to noise, or only the paper's printed
        lines), or no single digit (many marks of like size: a page of text).
    """
    return analyse(image).frame


def analyse(image: Image.Image) -> Digit:
    """Find the digit in a picture and bring it into MNIST form, keeping what was found.

    Steps: gray levels in [0, 1] (transparency composited onto the paper, 16-bit gray scaled,
    not clipped), large pictures reduced to about WORKING_SIDE squared pixels.  A picture no
    larger than MNIST's frame is taken as MNIST-like: its paper level (a plane fitted to the
    border) is removed and all its ink kept, so an MNIST digit maps onto itself.  A larger one
    (a photo, a scan, a drawing) goes through `_find_digit`: the lighting flattened, ink told
    from paper by a threshold chosen from the picture, the paper's printed lines and the specks
    dropped, the digit kept as the main connected ink.  Then, as MNIST was made: cropped to the
    digit, scaled to fit 20x20 keeping the aspect ratio, placed in 28x28 with its centre of mass
    at the centre.

    Parameters
    ----------
    image
        A PIL image of a single digit.

    Returns
    -------
    Digit
        The 28x28 frame and the masks behind it.

    Raises
    ------
    ImageError
        As `to_mnist`.
    """
    gray = _shrink(_gray(image), WORKING_SIDE)
    if max(gray.shape) > max(FRAME) and min(gray.shape) < MIN_DIGIT_PIXELS:
        raise ImageError(
            f"not a picture of a digit: {image.width}x{image.height} pixels is too thin to hold one "
            f"(its shorter side is under {MIN_DIGIT_PIXELS} pixels)"
        )
    if max(gray.shape) <= max(FRAME):
        ink, light_ink = _ink_of_small(gray)
        kept = ink > 0
        found = Digit(np.zeros(FRAME, np.uint8), kept, kept, np.zeros_like(kept), light_ink)
    else:
        ink, found = _find_digit(gray)
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    found.frame = _place_by_centre_of_mass(_fit(digit, FIT))
    return found


@dataclass
class Digit:
    """What `analyse` found: the network's input and, at the working resolution, the masks."""

    frame: np.ndarray  # uint8[28, 28]: what the network sees
    digit: np.ndarray  # bool[H, W]: the ink kept as the digit
    ink: np.ndarray  # bool[H, W]: everything told from the paper as ink
    lines: np.ndarray  # bool[H, W]: of that ink, the paper's printed lines
    light_ink: bool  # light ink on dark paper (chalk, MNIST itself)

    def mask_image(self) -> Image.Image:
        """RGB picture of the masks: the digit white, dropped ink grey, printed lines blue."""
        picture = np.zeros((*self.digit.shape, 3), np.uint8)
        picture[self.ink] = (110, 110, 110)
        picture[self.lines] = (60, 110, 255)
        picture[self.digit] = (255, 255, 255)
        return Image.fromarray(picture)


def _ink_of_small(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """float32 ink in [0, 1] of a picture no larger than MNIST's frame, 0 = paper, and whether
    it is light ink on dark: MNIST's way, all ink kept, the paper a plane fitted to the border."""
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
    if peak < FULL_INK:  # MNIST's own strokes peak at 254 or 255: those are left as they are
        ink /= peak
    return np.minimum(ink, 1, out=ink), light_ink


def _find_digit(gray: np.ndarray) -> tuple[np.ndarray, Digit]:
    """The digit's strokes, cropped (float32 in [0, 1], 0 away from them), and the masks."""
    light_ink = _is_light_ink(gray)
    ink = _flatten(gray, light_ink)
    peak = float(ndimage.uniform_filter(ink, 3).max())  # a stroke, not one noisy pixel
    if peak < MIN_CONTRAST:
        raise ImageError(f"no ink found: the image is blank (contrast {peak:.0%} of the paper's light)")
    threshold = _threshold(ink)
    found = ink > threshold
    lines = _paper_lines(found, ink > LOOSE * threshold, ink)
    digit = _main_ink(found & ~lines, ink, threshold, ~found)
    if digit is None:
        raise ImageError("no ink found: the image is blank apart from the paper's printed lines")
    strongest = float(ndimage.uniform_filter(ink, 3)[digit].max())
    if strongest < MIN_CONTRAST:  # the best mark is paper texture or a trace of shade
        raise ImageError(f"no ink found: the image is blank (contrast {strongest:.0%} of the paper's light)")
    strokes = _strokes(ink, digit, float(np.percentile(ink[digit], STROKE_PERCENTILE)))
    return strokes, Digit(np.zeros(FRAME, np.uint8), digit, found, lines & found, light_ink)


def _strokes(ink: np.ndarray, digit: np.ndarray, level: float) -> np.ndarray:
    """The digit's strokes in [0, 1], cropped with a margin: ink levels over the digit and a
    rim of RIM of its size around it (the soft edges below the threshold), 0 elsewhere, `level`
    full ink, levels below NOISE_FLOOR of it none."""
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    rim = max(1, int(round(RIM * side)))
    margin = rim + 2
    box = (
        slice(max(0, rows[0] - margin), rows[-1] + 1 + margin),
        slice(max(0, cols[0] - margin), cols[-1] + 1 + margin),
    )
    mine, levels = digit[box], ink[box]
    strokes = np.clip(levels / max(level, 1e-6), 0, 1)
    strokes[~ndimage.binary_dilation(mine, iterations=rim)] = 0
    strokes[strokes < NOISE_FLOOR] = 0  # compression ringing and grain: not the digit's edge
    return strokes


def _is_light_ink(gray: np.ndarray) -> bool:
    """Whether the picture is light ink on dark paper (chalk on a board, white on black).

    The paper is most of every neighbourhood, so a median filter at the background's scale is
    the paper: it keeps the straight and the ramped edges of shadows where they are (a fitted
    surface cannot follow a shadow's edge, and a closing or an opening takes the ink's side by
    construction), and removes every stroke narrower than half its window.  The ink is the
    one-sided tail of what differs from it: the TAIL-th and (100 - TAIL)-th percentiles tell
    which side.
    """
    window = max(3.0, POLARITY_SCALE * min(gray.shape))
    factor = max(1, int(window // BACKGROUND_WINDOW))
    small = _shrink_by(gray, factor)
    size = max(3, int(round(window / factor)) | 1)
    paper = _enlarge(ndimage.median_filter(small, size=(size, size), mode="nearest"), gray.shape, factor)
    # The tails need every pixel (a thin digit is a thousandth of a photo): on every second row
    # and column at most.
    step = max(1, int(np.sqrt(gray.size / 250_000)))
    residual = gray[::step, ::step] - paper[::step, ::step]
    darker, lighter = np.percentile(residual, [TAIL, 100 - TAIL])
    return lighter > -darker


def _enlarge(small: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """A copy reduced by `_shrink_by`, brought back to `shape` by bilinear interpolation."""
    if factor == 1:
        return small
    zoom = (shape[0] / small.shape[0], shape[1] / small.shape[1])
    return _match_shape(ndimage.zoom(small, zoom, order=1, mode="nearest", grid_mode=True), shape)


def _flatten(gray: np.ndarray, light_ink: bool) -> np.ndarray:
    """The ink's strength at every pixel, with the lighting removed; 0 on the paper.

    The paper's brightness is estimated at a scale well above the stroke width: a grey closing
    (opening, for light ink) with a window BACKGROUND_SCALE of the picture's shorter side
    removes every stroke narrower than that and follows the soft edges of shadows.  It runs on a copy reduced
    by block means, so that its window stays about BACKGROUND_WINDOW pixels, and is brought
    back to full size by bilinear interpolation.

    Dark ink's strength is the fraction of the local light it absorbs, (paper - pixel) / paper,
    which a shadow leaves unchanged; light ink's is its excess over the paper, of the full range.
    """
    window = max(3.0, BACKGROUND_SCALE * min(gray.shape))
    factor = max(1, int(window // BACKGROUND_WINDOW))
    small = _shrink_by(gray, factor)
    size = max(3, int(round(window / factor)) | 1)
    morphology = ndimage.grey_opening if light_ink else ndimage.grey_closing
    background = _enlarge(morphology(small, size=(size, size), mode="nearest"), gray.shape, factor)
    if light_ink:
        ink = gray - background
    else:
        ink = (background - gray) / np.maximum(background, np.float32(1 / 255))
    return np.clip(ink, 0, None, out=ink)


def _shrink_by(gray: np.ndarray, factor: int) -> np.ndarray:
    """Block means of factor x factor pixels (the ragged edge padded by repeating it)."""
    if factor == 1:
        return gray
    height, width = (-(-n // factor) * factor for n in gray.shape)
    padded = np.pad(gray, ((0, height - gray.shape[0]), (0, width - gray.shape[1])), mode="edge")
    return padded.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3), dtype=np.float32)


def _match_shape(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop or edge-pad to exactly `shape` (zoom may round a side by one pixel)."""
    array = array[: shape[0], : shape[1]]
    pad = ((0, shape[0] - array.shape[0]), (0, shape[1] - array.shape[1]))
    return np.pad(array, pad, mode="edge") if any(p[1] for p in pad) else array


def _threshold(ink: np.ndarray) -> float:
    """Ink is stronger than this: Otsu's threshold, and never within the paper's noise.

    The paper's noise is measured as 1.4826 times the median absolute deviation (a standard
    deviation that ink cannot inflate, the paper being most of the picture).
    """
    step = max(1, int(np.sqrt(ink.size / 250_000)))
    sample = ink[::step, ::step]
    median = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - median)))
    return max(_otsu(ink), median + NOISE_SIGMAS * noise, MIN_INK)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the split of the histogram with the largest between-class variance."""
    top = float(values.max())
    if top <= 0:
        return 0.0
    counts, edges = np.histogram(values, bins=bins, range=(0, top))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts, dtype=np.float64)
    mass = np.cumsum(counts * centres, dtype=np.float64)
    total, total_mass = weight[-1], mass[-1]
    below, above = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * below - mass[:-1] * total) ** 2 / (below * above)
    between[~np.isfinite(between)] = -1
    return float(edges[1:][int(np.argmax(between))])


def _paper_lines(found: np.ndarray, loose: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The pixels of `found` on the paper's printed lines (ruled or squared), bool like it.

        A printed line is straight, thin and crosses the whole picture; a stroke of a digit that is
        at most LINE_COVER of the picture across cannot be all three.  Lines are looked for in
        `loose`, ink by a lower threshold (faint lines come out whole in it), on a copy reduced to
        about LINE_SIDE pixels a side (a block is ink if any of its pixels is), one orientation at
        a time: for every tilt within MAX_TILT of it, in steps that move a line by at most half a
        pixel across the picture, each 1-pixel band is a line where ink covers LINE_COVER of the
        band's length inside the picture (`_line_bands`).  Within the bands, at full resolution, a
        pixel is the line's where it is no darker than the lines (`ink` at most LINE_STRENGTH times
    XX and at most LINE_MAX_THICKNESS of the picture: where a stroke
        crosses a line, the ink across runs on beyond it, and the crossing stays with the stroke.

        The lines of one orientation are taken away before the other's are looked for: dense lines
        of one kind fill the reduced copy and would pass for lines of the other kind, and where two
        lines cross, the crossing is thick across both until one is gone.  An orientation whose
        bands are too thick to be printed lines is tried again after the other.
    """
    lines = np.zeros_like(found)
    remaining, loose = found.copy(), loose.copy()
    done: set[int] = set()
    for axis in (0, 1, 0, 1):  # 0: horizontal lines (thin across rows), 1: vertical ones
        if axis in done:
            continue
        bands = _line_bands(loose, axis)
        in_band = bands & remaining
        if not in_band.any():
            done.add(axis)
            continue
        # The lines' own strength: their cores, over all of them, stretches the threshold missed too.
        faint = ink <= LINE_STRENGTH * float(np.percentile(ink[bands & loose], LINE_CORE))
        if not (in_band & faint).any():  # only strokes darker than any line in the bands
            done.add(axis)
            continue
        # The lines' width: the median across them in `found`, or in `loose`, where they are
        # whole, if that is less (in `found` the digit may be most of the bands' pixels).
        across, loose_across = _run_lengths(remaining, axis), _run_lengths(loose, axis)
        thickness = min(
            float(np.median(across[in_band & faint])), float(np.median(loose_across[bands & loose & faint]))
        )
        if thickness > max(3.0, LINE_MAX_THICKNESS * _size(found.shape)):
            continue  # too thick for now: the other orientation's lines may be in the way
        limit = np.ceil(LINE_THICKNESS * thickness) + 1
        on_line = in_band & faint & (across <= limit)
        lines |= on_line
        remaining &= ~on_line
        loose &= ~(bands & faint & (loose_across <= limit))
        done.add(axis)
    return lines


def _line_bands(loose: np.ndarray, axis: int) -> np.ndarray:
    """Where `_paper_lines` finds lines of one orientation in `loose`, bool at full resolution."""
    factor = max(1, -(-max(loose.shape) // LINE_SIDE))
    height, width = (-(-n // factor) * factor for n in loose.shape)
    padded = np.zeros((height, width), bool)
    padded[: loose.shape[0], : loose.shape[1]] = loose
    small = padded.reshape(height // factor, factor, width // factor, factor).any(axis=(1, 3))
    bands = _horizontal_lines(small) if axis == 0 else _horizontal_lines(small.T).T
    return np.repeat(np.repeat(bands, factor, axis=0), factor, axis=1)[: loose.shape[0], : loose.shape[1]]


def _run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """For each pixel of `mask`, the length of the run of mask pixels through it along `axis`."""
    m = mask if axis == 0 else mask.T
    index = np.arange(m.shape[0])[:, None]
    last_gap = np.maximum.accumulate(np.where(m, -1, index), axis=0)
    next_gap = m.shape[0] - 1 - np.maximum.accumulate(np.where(m[::-1], -1, index), axis=0)[::-1]
    runs = np.where(m, next_gap - last_gap - 1, 0)
    return runs if axis == 0 else runs.T


def _horizontal_lines(mask: np.ndarray) -> np.ndarray:
    """The bands of `_paper_lines` within MAX_TILT of horizontal, on the reduced mask."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    lines = np.zeros_like(mask)
    if ys.size < LINE_COVER * width:
        return lines
    step = 0.5 / width
    angles = np.arange(-np.radians(MAX_TILT), np.radians(MAX_TILT) + step / 2, step)
    offset = int(np.ceil(width * np.sin(np.radians(MAX_TILT)))) + 1
    bands = height + 2 * offset
    ys_f, xs_f = ys.astype(np.float64), xs.astype(np.float64)
    for chunk in np.array_split(angles, max(1, angles.size * ys.size // 2_000_000)):
        sin, cos = np.sin(chunk)[:, None], np.cos(chunk)[:, None]
        band = np.rint(ys_f * cos - xs_f * sin).astype(np.int64) + offset  # [angles, pixels]
        keys = band + bands * np.arange(chunk.size)[:, None]
        count = np.bincount(keys.ravel(), minlength=chunk.size * bands).reshape(chunk.size, bands)
        # Length of each band inside the picture: the x in [0, width) where its
        # y = (d + x sin) / cos is in [0, height).
        d = (np.arange(bands) - offset)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            first, last = (-0.5 * cos - d) / sin, ((height - 0.5) * cos - d) / sin
        low, high = np.minimum(first, last), np.maximum(first, last)
        flat = np.broadcast_to(sin == 0, low.shape)
        inside = (d >= -0.5) & (d < height - 0.5)
        low = np.where(flat, np.where(inside, 0, width), low)
        high = np.where(flat, width, high)
        chord = np.clip(np.minimum(high, width) - np.maximum(low, 0), 0, None)
        hit = (count >= LINE_COVER * chord) & (chord >= 0.5 * width)
        if not hit.any():
            continue
        # A line a little thicker than a band leaves partial bands beside it: take them too.
        hit[:, 1:] |= hit[:, :-1].copy()
        hit[:, :-1] |= hit[:, 1:].copy()
        on_line = hit.ravel()[keys].any(axis=0)
        lines[ys[on_line], xs[on_line]] = True
    return lines


def _main_ink(ink: np.ndarray, strength: np.ndarray, threshold: float, paper: np.ndarray) -> np.ndarray | None:
    """The digit: the main connected ink and the pieces close to it, bool; None if no ink.

    Ink ends sharply at the paper: a few pixels beyond a component's edge (EDGE of the
    picture's size and at least 4, more than any blur) the paper is clean.  Where the light
    changed faster than the background estimate could follow (a shadow's tip, a dark corner),
    what passes for ink fades out slowly instead; components whose surroundings are still more than SOFT of the
    threshold strong (the median of a ring of `paper` around them: printed lines are not paper)
    are that, and are dropped first.
    Connected components closer than REACH of the picture's size to one another are one mark
    (a stroke the threshold broke, a bar lifted off the paper); specks (less than PART of the
    largest component) neither join nor bridge marks.  Marks are weighed by their area, less the
    farther they lie from the ink's mass; the heaviest is the digit, less its specks.  Other
    marks of the digit's size elsewhere (MAX_RIVALS at RIVAL of its area), or a mark made of
    many pieces none of which is most of it (MAX_PIECES, MAIN_PIECE), mean a page of text or
    several digits, not one: that is refused.
    """
    labels, count = ndimage.label(ink, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=count + 1).astype(np.float64)
    areas[0] = 0
    inner = max(4, int(round(EDGE * _size(ink.shape))))
    outer = inner + max(2, inner // 2)
    around = ndimage.maximum_filter(labels, size=2 * outer + 1)
    around[ndimage.maximum_filter(ink.view(np.uint8), size=2 * inner + 1).view(bool) | ~paper] = 0
    # The ring's median is above SOFT of the threshold where most of the ring is.
    ring = around > 0
    strong = np.bincount(around[ring], weights=strength[ring] > SOFT * threshold, minlength=count + 1)
    areas[strong > 0.5 * np.bincount(around[ring], minlength=count + 1)] = 0
    if not areas.any():
        return None
    solid = areas >= PART * areas.max()
    body = solid[labels]
    reach = max(1, int(round(REACH * _size(ink.shape))))
    near = ndimage.maximum_filter(body.view(np.uint8), size=2 * reach + 1).view(bool)
    marks, _ = ndimage.label(near, structure=np.ones((3, 3), bool))
    mark_of = np.zeros(count + 1, np.int64)
    mark_of[labels[body]] = marks[body]  # every solid component lies inside one mark
    mark_area = np.bincount(mark_of[solid], weights=areas[solid])
    rows, cols = np.nonzero(body)
    mass_row, mass_col = rows.mean(), cols.mean()
    spread = max(float(np.sqrt(((rows - mass_row) ** 2 + (cols - mass_col) ** 2).mean())), 1.0)
    pixel_mark = marks[rows, cols]
    weight = np.zeros(mark_area.size)
    for m in np.flatnonzero(mark_area):
        mine = pixel_mark == m
        distance = np.hypot(rows[mine].mean() - mass_row, cols[mine].mean() - mass_col)
        weight[m] = mark_area[m] / (1 + (distance / (2 * spread)) ** 2)
    best = int(np.argmax(weight))
    digit_area = mark_area[best]
    mine = solid & (mark_of == best)
    members = mine & (areas >= PART * areas[mine].max())
    digit = members[labels]
    rows, cols = np.nonzero(digit)
    size = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    if size < max(MIN_DIGIT_PIXELS, MIN_DIGIT_SIZE * _size(ink.shape)):
        raise ImageError(
            f"no ink found: the image is blank (its largest mark, {size} pixels across, is a speck, not a digit)"
        )
    rivals = int((np.delete(mark_area, best) >= RIVAL * digit_area).sum())
    if rivals >= MAX_RIVALS:
        raise ImageError(
            f"no single digit found: {rivals + 1} separate marks of like size (a page of text, or several digits?)"
        )
    pieces = int(members.sum())
    if pieces >= MAX_PIECES and areas[members].max() < MAIN_PIECE * areas[members].sum():
        raise ImageError(
            f"no single digit found: {pieces} marks of like size close together (a page of text, or several digits?)"
        )
    return digit


def _size(shape: tuple[int, int]) -> float:
    """The picture's size, which the sizes of marks, gaps and rims are fractions of: the
    geometric mean of its sides, so that a strip of paper 1,000 pixels long and 60 high (a digit
    at most 60 tall) does not make a legible digit a speck."""
    return float(np.sqrt(shape[0] * shape[1]))


def _gray(image: Image.Image) -> np.ndarray:
    """float32[H, W] in [0, 1], 1 = white; transparent areas become the paper."""
    if image.mode in _WIDE_GRAY_MODES:
        return np.asarray(image).astype(np.float32) / np.float32(65535)
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        broken = int(values.size - np.count_nonzero(np.isfinite(values)))
        if broken:
            raise ImageError(f"not a picture of a digit: {broken} of its pixels are NaN or infinite")
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
    """Average whole blocks of pixels so that the picture holds about `side` squared pixels at
    most (a long strip keeps its short side), never emptying a side."""
    factor = min(int(np.ceil(_size(gray.shape) / side)), min(gray.shape))
    if factor <= 1:
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
        resized = Image.fromarray(digit).resize(size, _RESAMPLING.LANCZOS)
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
