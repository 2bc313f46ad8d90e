"""Photo-like pictures of single digits, made from a seed: the test set of `tests/test_photos.py`.

Each picture is one clearly legible digit, drawn as pen strokes along a handwriting-like skeleton
(with jitter, slant, stroke width and pressure of its own) or rendered in a TrueType font, on
paper as a phone would photograph it: plain, ruled or squared paper with grain and specks;
black, blue or red ink, pencil, or chalk on a dark board; light falling unevenly and a soft
shadow; slight rotation and perspective; blur, sensor noise and JPEG at quality 40-90; frames
of 64x64 to 1200x900 pixels with the digit 15-60% of the frame's height, anywhere in it.

Every picture draws on its own random stream (the seed and its index), so picture i is the same
whatever the other pictures are, and on a machine without the fonts only the font pictures are
missing (`make` skips them) while the drawn ones stay the same.

Two seeds, never mixed: DEV_SEED is the one the preprocessing was developed and looked at on;
TEST_SEED is the held-out one the tests measure.  ``python tests/photo_digits.py OUT_DIR``
writes a set as JPEG files for looking at.
"""

from __future__ import annotations

import io
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEV_SEED = 20261
TEST_SEED = 90417

_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow 9.0 has only the old constants
_TRANSFORM = getattr(Image, "Transform", Image)

# Frame sizes: heights from 64 to 900 pixels, spread evenly on a log scale; widths by aspect.
MIN_SIDE, MAX_HEIGHT, MAX_WIDTH = 64, 900, 1200
ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 16 / 9)
DIGIT_FRACTION = (0.15, 0.60)  # the digit's height, of the frame's height
# Below this many pixels tall a digit is no longer "clearly legible" after blur and JPEG at
# quality 40 (MNIST's own digits are 20 pixels tall); small frames therefore get the larger
# fractions of the range.
MIN_DIGIT_PIXELS = 24
SUPERSAMPLE = 3  # strokes and glyphs are drawn this much larger, then reduced: anti-aliasing

# Font files looked for by name in the system's font folders and in matplotlib's (which the
# test extra installs); a picture whose font is not found is skipped.
FONT_NAMES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
)
FONT_SHARE = 0.3  # of the pictures, rendered in a font; the rest are drawn strokes

INKS = {  # RGB of the ink where it covers the paper fully
    "black": (22, 22, 28),
    "blue": (28, 42, 140),
    "red": (175, 28, 36),
    "pencil": (95, 95, 100),
}
PAPERS = ("plain", "ruled", "squared")
LIGHTS = ("even", "gradient", "shadow")


@dataclass
class Photo:
    """One generated picture: its JPEG file's bytes, the digit, and how it was made."""

    jpeg: bytes
    digit: int | None  # None for the pictures without a digit
    tags: dict[str, str] = field(default_factory=dict)

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.jpeg))


# --- the digits --------------------------------------------------------------------------------
# Skeletons in a box 0.65 wide and 1 tall (y down).  A stroke is ("line", points): straight
# segments with sharp corners, or ("curve", points): a smooth Catmull-Rom curve through them.


def _ellipse(cx, cy, rx, ry, start=-math.pi / 2, turn=2.08 * math.pi, n=14):
    angles = start - np.linspace(0, turn, n)  # anticlockwise on the page, as most people write
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


_NINE_LOOP = [(0.56, 0.22), (0.38, 0.02), (0.12, 0.06), (0.05, 0.28), (0.2, 0.46), (0.46, 0.42), (0.57, 0.22)]

SKELETONS = {
    0: [
        [("curve", _ellipse(0.32, 0.5, 0.29, 0.48))],
        [("curve", _ellipse(0.3, 0.5, 0.24, 0.47, start=-math.pi / 2 + 0.3, turn=2.15 * math.pi))],
    ],
    1: [
        [("line", [(0.32, 0.0), (0.3, 1.0)])],
        [("line", [(0.1, 0.2), (0.34, 0.0), (0.32, 1.0)])],
        [("line", [(0.12, 0.18), (0.36, 0.0), (0.36, 1.0)]), ("line", [(0.12, 1.0), (0.6, 1.0)])],
    ],
    2: [
        [
            ("curve", [(0.04, 0.24), (0.18, 0.04), (0.4, 0.0), (0.58, 0.16), (0.54, 0.4), (0.3, 0.68), (0.03, 0.97)]),
            ("line", [(0.03, 0.97), (0.64, 0.96)]),
        ],
        [
            ("curve", [(0.06, 0.2), (0.3, 0.0), (0.55, 0.1), (0.52, 0.38), (0.05, 0.96)]),
            ("curve", [(0.05, 0.96), (0.25, 0.9), (0.45, 0.97), (0.65, 0.93)]),
        ],
    ],
    3: [
        [
            ("curve", [(0.04, 0.12), (0.26, 0.0), (0.5, 0.05), (0.55, 0.23), (0.42, 0.4), (0.22, 0.47)]),
            ("curve", [(0.22, 0.47), (0.48, 0.53), (0.62, 0.74), (0.5, 0.94), (0.26, 1.0), (0.02, 0.9)]),
        ],
        [
            ("line", [(0.04, 0.02), (0.56, 0.02), (0.28, 0.4)]),
            ("curve", [(0.28, 0.4), (0.52, 0.48), (0.62, 0.72), (0.5, 0.93), (0.27, 1.0), (0.02, 0.9)]),
        ],
    ],
    4: [
        [("line", [(0.46, 1.0), (0.46, 0.0), (0.0, 0.68), (0.66, 0.68)])],
        [("line", [(0.1, 0.0), (0.04, 0.56), (0.64, 0.56)]), ("line", [(0.5, 0.14), (0.48, 1.0)])],
    ],
    5: [
        [
            ("line", [(0.6, 0.02), (0.12, 0.02), (0.08, 0.44)]),
            ("curve", [(0.08, 0.44), (0.3, 0.35), (0.54, 0.44), (0.62, 0.68), (0.5, 0.9), (0.27, 1.0), (0.02, 0.9)]),
        ],
        [
            ("line", [(0.12, 0.02), (0.08, 0.46)]),
            ("curve", [(0.08, 0.46), (0.35, 0.36), (0.6, 0.55), (0.55, 0.88), (0.3, 1.0), (0.03, 0.88)]),
            ("line", [(0.12, 0.02), (0.6, 0.0)]),
        ],
    ],
    6: [
        [
            (
                "curve",
                [
                    (0.54, 0.03),
                    (0.3, 0.14),
                    (0.1, 0.42),
                    (0.05, 0.72),
                    (0.18, 0.97),
                    (0.43, 0.97),
                    (0.58, 0.78),
                    (0.5, 0.56),
                    (0.27, 0.52),
                    (0.08, 0.64),
                ],
            )
        ],
    ],
    7: [
        [("line", [(0.0, 0.03), (0.62, 0.03), (0.24, 1.0)])],
        [("line", [(0.02, 0.06), (0.62, 0.02)]), ("curve", [(0.62, 0.02), (0.45, 0.36), (0.33, 0.68), (0.27, 1.0)])],
        [("line", [(0.0, 0.03), (0.62, 0.03), (0.24, 1.0)]), ("line", [(0.16, 0.52), (0.52, 0.5)])],
    ],
    8: [
        [
            (
                "curve",
                [
                    (0.52, 0.14),
                    (0.32, 0.0),
                    (0.1, 0.08),
                    (0.12, 0.3),
                    (0.32, 0.46),
                    (0.56, 0.64),
                    (0.56, 0.88),
                    (0.32, 1.0),
                    (0.06, 0.88),
                    (0.08, 0.64),
                    (0.32, 0.46),
                    (0.5, 0.3),
                    (0.54, 0.12),
                ],
            )
        ],
        [("curve", _ellipse(0.32, 0.24, 0.2, 0.23)), ("curve", _ellipse(0.32, 0.73, 0.27, 0.27, start=math.pi / 2))],
    ],
    9: [
        [
            ("curve", _NINE_LOOP),
            ("line", [(0.58, 0.08), (0.54, 1.0)]),
        ],
        [
            ("curve", _NINE_LOOP),
            ("curve", [(0.58, 0.1), (0.56, 0.5), (0.48, 0.8), (0.34, 1.0)]),
        ],
    ],
}


def _catmull_rom(points: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """A smooth curve through every point (centripetal enough for hand-drawn shapes)."""
    if len(points) < 3:
        return points
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    pieces = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        pieces.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    pieces.append(points[-1:])
    return np.vstack(pieces)


def drawn_digit(digit: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage float32[h, w] in [0, 1] of a hand-drawn `digit` about `height` pixels tall."""
    variants = SKELETONS[digit]
    strokes = variants[rng.integers(len(variants))]
    slant = rng.uniform(-0.12, 0.28)  # the top's shift right, of the height: most hands lean right
    widen = rng.uniform(0.8, 1.25)
    wobble = rng.uniform(0.0, 0.035)
    # Stroke width, of the digit's height: a ballpoint on a large digit to a marker on a small one.
    width_fraction = math.exp(rng.uniform(math.log(0.025), math.log(0.16)))
    k = SUPERSAMPLE
    scale = height * k
    stroke_px = max(1.2 * k, width_fraction * scale)
    margin = stroke_px + 2 * k
    polylines = []
    for kind, points in strokes:
        points = np.array(points, np.float64)
        points = points + rng.normal(0, wobble, points.shape)
        points[:, 0] = points[:, 0] * widen - slant * (points[:, 1] - 0.5)
        if kind == "curve":
            points = _catmull_rom(points)
        polylines.append(points * scale)
    allpoints = np.vstack(polylines)
    low = allpoints.min(axis=0) - margin
    size = np.ceil(allpoints.max(axis=0) - low + margin).astype(int)
    canvas = Image.new("L", (int(size[0]), int(size[1])), 0)
    draw = ImageDraw.Draw(canvas)
    pressure = rng.uniform(0.75, 1.0)
    for points in polylines:
        xy = [tuple(p) for p in points - low]
        draw.line(xy, fill=255, width=int(round(stroke_px)), joint="curve")
        r = stroke_px / 2
        for x, y in (xy[0], xy[-1]):  # round pen tips
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    canvas = canvas.resize((max(1, canvas.width // k), max(1, canvas.height // k)), _RESAMPLING.BOX)
    ink = np.asarray(canvas, np.float32) / 255
    return ink * pressure


def font_paths() -> dict[str, Path]:
    """FONT_NAMES found on this machine, name -> path."""
    folders = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    try:
        import matplotlib

        folders.append(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf")
    except ImportError:
        pass
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.ttf")):
                if path.name in FONT_NAMES:
                    found.setdefault(path.name, path)
    return found


def font_digit(digit: int, height: int, font: Path, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage of `digit` in `font`, scaled so that the glyph is `height` pixels tall."""
    k = SUPERSAMPLE
    face = ImageFont.truetype(str(font), size=int(height * k * 1.4))
    canvas = Image.new("L", (int(height * k * 2), int(height * k * 2)), 0)
    ImageDraw.Draw(canvas).text((height * k // 3, height * k // 5), str(digit), fill=255, font=face)
    box = canvas.getbbox()
    glyph = canvas.crop(box)
    scale = height / glyph.height
    widen = rng.uniform(0.9, 1.1)
    size = (max(1, round(glyph.width * scale * widen)), height)
    glyph = glyph.resize(size, _RESAMPLING.LANCZOS)
    pad = max(2, height // 10)
    ink = np.zeros((size[1] + 2 * pad, size[0] + 2 * pad), np.float32)
    ink[pad:-pad, pad:-pad] = np.asarray(glyph, np.float32) / 255
    return np.clip(ink, 0, 1) * rng.uniform(0.85, 1.0)


# --- the photograph --------------------------------------------------------------------------------


def _smooth_noise(shape, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with features about `scale` pixels across, unit standard deviation."""
    h, w = shape
    small = (max(2, int(round(h / scale)) + 2), max(2, int(round(w / scale)) + 2))
    coarse = Image.fromarray(rng.standard_normal(small).astype(np.float32))
    field_ = np.asarray(coarse.resize((w, h), _RESAMPLING.BICUBIC), np.float32)
    return field_ / max(float(field_.std()), 1e-6)


def _frame_size(rng: np.random.Generator) -> tuple[int, int]:
    height = int(round(math.exp(rng.uniform(math.log(MIN_SIDE), math.log(MAX_HEIGHT)))))
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    width = int(round(height * aspect))
    if width > MAX_WIDTH:
        width, height = MAX_WIDTH, int(round(MAX_WIDTH / aspect))
    if width < MIN_SIDE:
        width, height = MIN_SIDE, int(round(MIN_SIDE / aspect))
    return width, max(height, MIN_SIDE)


def _lines(shape, paper: str, digit_h: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and RGB colour of the paper's printed lines."""
    h, w = shape
    cover = np.zeros(shape, np.float32)
    colour = np.array([(150, 180, 225), (170, 170, 175), (140, 190, 200)][rng.integers(3)], np.float32)
    if paper == "plain":
        return cover, colour
    thickness = max(1.0, rng.uniform(0.8, 2.2) * max(h, w) / 500)
    strength = rng.uniform(0.55, 1.0)
    if paper == "ruled":
        spacing = max(7.0, digit_h * rng.uniform(0.35, 0.9))
    else:
        spacing = max(6.0, digit_h * rng.uniform(0.2, 0.5))
    canvas = Image.new("L", (w * 2, h * 2), 0)
    draw = ImageDraw.Draw(canvas)
    width_px = max(1, int(round(thickness * 2)))
    offset = rng.uniform(0, spacing)
    y = offset
    while y < h:
        draw.line([(0, 2 * y), (2 * w, 2 * y)], fill=255, width=width_px)
        y += spacing
    if paper == "squared":
        x = rng.uniform(0, spacing)
        while x < w:
            draw.line([(2 * x, 0), (2 * x, 2 * h)], fill=255, width=width_px)
            x += spacing
    elif rng.random() < 0.3:  # the red margin of an exercise book
        x = rng.uniform(0.05, 0.3) * w
        margin = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(margin).line([(2 * x, 0), (2 * x, 2 * h)], fill=255, width=width_px)
        cover = np.asarray(canvas.resize((w, h), _RESAMPLING.BOX), np.float32) / 255 * strength
        red = np.asarray(margin.resize((w, h), _RESAMPLING.BOX), np.float32) / 255 * strength
        return np.maximum(cover, red), colour  # drawn in the lines' colour too: a faint margin
    cover = np.asarray(canvas.resize((w, h), _RESAMPLING.BOX), np.float32) / 255 * strength
    return cover, colour


def _illumination(shape, light: str, rng: np.random.Generator) -> np.ndarray:
    """The light falling on the page, 1 = full."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    rows /= max(h, w)
    cols /= max(h, w)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = rows * math.sin(angle) + cols * math.cos(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    if light == "even":
        return 1 - rng.uniform(0, 0.08) * ramp
    light_field = 1 - rng.uniform(0.2, 0.45) * ramp
    cy, cx = rng.uniform(0.2, 0.8, 2) * np.array([h, w]) / max(h, w)
    light_field *= 1 - rng.uniform(0.0, 0.15) * ((rows - cy) ** 2 + (cols - cx) ** 2)
    if light == "shadow":
        # A soft shadow (a hand, a phone) whose edge is a gentle curve across the page.
        angle = rng.uniform(0, 2 * math.pi)
        across = (rows - rng.uniform(0.2, 0.8) * h / max(h, w)) * math.sin(angle) + (
            cols - rng.uniform(0.2, 0.8) * w / max(h, w)
        ) * math.cos(angle)
        across += rng.uniform(-0.4, 0.4) * (rows * math.cos(angle) - cols * math.sin(angle)) ** 2
        softness = rng.uniform(0.03, 0.12)
        shade = 1 / (1 + np.exp(-across / softness))
        light_field *= 1 - rng.uniform(0.25, 0.5) * shade
    return light_field.astype(np.float32)


def _perspective(image: Image.Image, frame, pad: int, rng: np.random.Generator, amount: float) -> Image.Image:
    """The page seen slightly from the side: the frame's corners each land up to `amount` of its
    size away from where they were, inside the `pad` of paper drawn around the frame."""
    w, h = frame
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)
    moved = corners + pad + np.clip(rng.uniform(-amount, amount, (4, 2)) * (w, h), -pad, pad)
    # The 8 coefficients that map each output corner to its place on the page.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(corners, moved):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coefficients = np.linalg.solve(np.array(rows), np.array(rhs))
    return image.transform((w, h), _TRANSFORM.PERSPECTIVE, tuple(coefficients), _RESAMPLING.BILINEAR)


def _grain(cover: np.ndarray, depth: float, rng: np.random.Generator) -> None:
    """Pencil and chalk leave gaps where the paper's tooth stands up: thin the coverage at random."""
    rows = np.flatnonzero(cover.any(axis=1))
    cols = np.flatnonzero(cover.any(axis=0))
    if rows.size:
        box = cover[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        box *= np.clip(1 - depth * np.abs(rng.standard_normal(box.shape, np.float32)), 0, 1)


PERSPECTIVE = 0.06  # the most a corner moves, of the frame's size


def photograph(
    ink: np.ndarray | None, rng: np.random.Generator, *, paper: str, colour: str, light: str, frame=None, placed=None
) -> tuple[bytes, dict]:
    """Put `ink` (coverage, None for an empty page) on paper and photograph it; JPEG bytes.

    `placed` is coverage already laid out over the whole frame (a page of text)."""
    width, height = frame or _frame_size(rng)
    pad = int(math.ceil(PERSPECTIVE * max(width, height))) + 2
    shape = (height + 2 * pad, width + 2 * pad)  # the page, larger than what the camera sees
    cover = np.zeros(shape, np.float32)
    if ink is not None:
        rotated = Image.fromarray(ink).rotate(rng.uniform(-10, 10), _RESAMPLING.BICUBIC, expand=True)
        ink = np.clip(np.asarray(rotated, np.float32), 0, 1)
        ih, iw = min(ink.shape[0], height), min(ink.shape[1], width)
        margin = int(0.03 * min(width, height))
        top = pad + int(rng.integers(min(margin, height - ih), max(min(margin, height - ih), height - ih - margin) + 1))
        left = pad + int(rng.integers(min(margin, width - iw), max(min(margin, width - iw), width - iw - margin) + 1))
        cover[top : top + ih, left : left + iw] = ink[:ih, :iw]
    if placed is not None:
        cover[pad : pad + height, pad : pad + width] = np.maximum(cover[pad : pad + height, pad : pad + width], placed)
    if colour == "chalk":
        board = np.array([(38, 62, 52), (32, 34, 38), (45, 45, 50)][rng.integers(3)], np.float32)
        shade = 1 + 0.06 * _smooth_noise(shape, max(8, height / 6), rng)
        chalk = np.array([230, 230, 222], np.float32) * rng.uniform(0.8, 1.0)
        _grain(cover, 0.35, rng)
        layers = [(shade, board), (cover, chalk - board * shade[..., None])]  # chalk covers the board
        paper = "plain"
    else:
        tints = [(250, 250, 248), (246, 240, 226), (238, 238, 236), (250, 246, 214)]  # white, cream, grey, yellow
        tint = np.array(tints[rng.integers(len(tints))], np.float32)
        texture = 0.015 * _smooth_noise(shape, max(4, height / 10), rng)  # the sensor's noise adds grain
        texture += 1
        # Lines spaced for the digit's size, or for a digit a third of the page tall.
        digit_h = int(cover.any(axis=1).sum()) if ink is not None else height // 3
        lines, line_rgb = _lines(shape, paper, max(1, digit_h), rng)
        specks = Image.new("L", (shape[1], shape[0]), 0)  # dust and fibres
        draw = ImageDraw.Draw(specks)
        for _ in range(int(rng.integers(0, 6))):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            r = rng.uniform(0.5, 1.5) * max(1, height / 300)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(60, 200)))
        speck = np.asarray(specks, np.float32) / 255
        ink_rgb = np.array(INKS[colour], np.float32)
        if colour == "pencil":
            ink_rgb = ink_rgb * rng.uniform(0.8, 1.3)
            _grain(cover, 0.3, rng)
        # Each layer covers what lies beneath by its coverage: paper, printed lines, dust, ink.
        paper_left = (1 - lines) * (1 - speck) * (1 - cover)
        layers = [
            (texture * paper_left, tint),
            (lines * (1 - speck) * (1 - cover), line_rgb),
            (speck * (1 - cover), np.full(3, 90, np.float32)),
            (cover, ink_rgb),
        ]
    pixels = np.zeros((*shape, 3), np.float32)
    for weight, rgb in layers:
        if np.ndim(rgb) == 1:
            for c in range(3):
                pixels[..., c] += weight * rgb[c]
        else:
            pixels += weight[..., None] * rgb
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = _perspective(image, (width, height), pad, rng, rng.uniform(0, PERSPECTIVE))
    light_field = _illumination((height, width), light, rng)
    blur = rng.uniform(0, 1) ** 2 * min(3.0, 0.012 * height + 0.3)
    noise_level = rng.uniform(1, 4)
    pixels = np.asarray(image, np.float32)
    pixels *= light_field[..., None]
    pixels += noise_level * rng.standard_normal((height, width, 1), np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if blur > 0.3:  # the lens blurs the light and the noise comes after, but blurred noise looks alike
        image = image.filter(ImageFilter.GaussianBlur(blur))
    quality = int(rng.integers(40, 91))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    tags = dict(paper=paper, ink=colour, light=light, jpeg=str(quality), frame=f"{width}x{height}")
    return buffer.getvalue(), tags


def _size_tag(fraction: float) -> str:
    """The digit's height, of the frame's, in words."""
    return "small" if fraction < 0.3 else "medium" if fraction < 0.45 else "large"


def one(seed: int, index: int, fonts: dict[str, Path]) -> Photo | None:
    """Picture `index` of the set made from `seed`, or None where its font is not here."""
    rng = np.random.default_rng([seed, index])
    digit = int(rng.integers(10))
    width, height = _frame_size(rng)
    low = max(DIGIT_FRACTION[0], MIN_DIGIT_PIXELS / height)
    fraction = rng.uniform(low, max(low, DIGIT_FRACTION[1]))
    digit_h = int(round(fraction * height))
    use_font = rng.random() < FONT_SHARE
    font_name = FONT_NAMES[rng.integers(len(FONT_NAMES))]
    kind = rng.random()
    colour = "chalk" if kind < 0.08 else ("black", "blue", "red", "pencil")[int(rng.integers(4))]
    paper = PAPERS[rng.integers(len(PAPERS))]
    light = LIGHTS[rng.integers(len(LIGHTS))]
    if use_font:
        if font_name not in fonts:
            return None
        ink = font_digit(digit, digit_h, fonts[font_name], rng)
        source = "font"
    else:
        ink = drawn_digit(digit, digit_h, rng)
        source = "drawn"
    jpeg, tags = photograph(ink, rng, paper=paper, colour=colour, light=light, frame=(width, height))
    tags.update(source=source, size=_size_tag(fraction), digit=str(digit))
    if use_font:
        tags["font"] = font_name
    return Photo(jpeg, digit, tags)


def handwritten(seed: int, index: int, images: np.ndarray, labels: np.ndarray) -> Photo:
    """Picture `index` of a set made from `seed` of real handwriting: an MNIST digit (drawn at
    random from `images`, uint8[N, 28, 28], with its `labels`) written on paper at a size and
    place of its own and photographed as `one`'s pictures are."""
    rng = np.random.default_rng([seed, index, 28])
    pick = int(rng.integers(len(images)))
    width, height = _frame_size(rng)
    low = max(DIGIT_FRACTION[0], MIN_DIGIT_PIXELS / height)
    fraction = rng.uniform(low, max(low, DIGIT_FRACTION[1]))
    digit_h = int(round(fraction * height))
    rows, cols = np.nonzero(images[pick])
    crop = images[pick][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    size = (max(1, round(crop.shape[1] * digit_h / crop.shape[0])), digit_h)
    ink = np.asarray(Image.fromarray(crop).resize(size, _RESAMPLING.BICUBIC), np.float32) / 255
    colour = "chalk" if rng.random() < 0.08 else ("black", "blue", "red", "pencil")[int(rng.integers(4))]
    paper, light = PAPERS[rng.integers(len(PAPERS))], LIGHTS[rng.integers(len(LIGHTS))]
    jpeg, tags = photograph(np.clip(ink, 0, 1), rng, paper=paper, colour=colour, light=light, frame=(width, height))
    tags.update(source="mnist", size=_size_tag(fraction), digit=str(int(labels[pick])), mnist_index=str(pick))
    return Photo(jpeg, int(labels[pick]), tags)


def make(seed: int, count: int) -> list[Photo]:
    """Pictures 0 .. count-1 of the set made from `seed`, less those whose font is missing."""
    fonts = font_paths()
    return [photo for photo in (one(seed, i, fonts) for i in range(count)) if photo is not None]


def blank_page(seed: int, index: int) -> Photo:
    """A page with no digit: plain, ruled or squared, under uneven light or a shadow."""
    rng = np.random.default_rng([seed, 1_000_000 + index])
    paper = PAPERS[index % len(PAPERS)]
    light = LIGHTS[(index // len(PAPERS)) % len(LIGHTS)]
    jpeg, tags = photograph(None, rng, paper=paper, colour="black", light=light)
    return Photo(jpeg, None, {**tags, "kind": "blank"})


def text_page(seed: int, index: int) -> Photo:
    """A page of handwritten-looking text: rows of small letters, no single digit."""
    rng = np.random.default_rng([seed, 2_000_000 + index])
    width, height = _frame_size(np.random.default_rng([seed, 3_000_000 + index]))
    width, height = max(width, 320), max(height, 240)
    letter_h = max(10, int(height * rng.uniform(0.04, 0.08)))
    cover = np.zeros((height, width), np.float32)
    y = int(letter_h * rng.uniform(0.8, 1.5))
    while y + letter_h * 1.3 < height:
        x = int(rng.integers(2, letter_h + 3))
        while x + letter_h < width - 2:
            for _ in range(int(rng.integers(2, 8))):  # a word
                glyph = drawn_digit(int(rng.integers(10)), letter_h, rng)
                gh, gw = glyph.shape
                if x + gw >= width or y + gh >= height:
                    break
                cover[y : y + gh, x : x + gw] = np.maximum(cover[y : y + gh, x : x + gw], glyph)
                x += int(gw * rng.uniform(0.45, 0.7))
            x += int(letter_h * rng.uniform(0.8, 1.5))
        y += int(letter_h * rng.uniform(1.6, 2.2))
    paper = ("plain", "ruled")[index % 2]
    jpeg, tags = photograph(
        None, rng, paper=paper, colour="blue", light=LIGHTS[index % 3], frame=(width, height), placed=cover
    )
    return Photo(jpeg, None, {**tags, "kind": "text"})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python tests/photo_digits.py OUT_DIR [COUNT] [SEED]", file=sys.stderr)
        return 2
    out = Path(argv[0])
    count = int(argv[1]) if len(argv) > 1 else 100
    seed = int(argv[2]) if len(argv) > 2 else DEV_SEED
    out.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(make(seed, count)):
        tags = "_".join(photo.tags[k] for k in ("source", "paper", "ink", "light"))
        name = f"{i:04d}_{photo.digit}_{tags}.jpg"
        (out / name).write_bytes(photo.jpeg)
    for i in range(6):
        (out / f"blank_{i}.jpg").write_bytes(blank_page(seed, i).jpeg)
        (out / f"text_{i}.jpg").write_bytes(text_page(seed, i).jpeg)
    print(f"{out}: {len(os.listdir(out))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
