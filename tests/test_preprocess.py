"""preprocess: any picture of a digit in MNIST form; MNIST itself left (nearly) alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet5_pynq import preprocess
from lenet5_pynq.backends import load_backend

CANVAS = (160, 140)  # width, height: a drawing larger than MNIST and not square
PAPER_RGB = (236, 230, 214)
INK_RGB = (25, 30, 90)
# Pillow 9.0 (the PYNQ 3.0 image) has only Image.BOX, Image.NONE and the like.
RESAMPLING = getattr(Image, "Resampling", Image)
DITHER = getattr(Image, "Dither", Image)


@pytest.fixture(scope="module")
def cpu():
    return load_backend("cpu")


def drawn_seven() -> np.ndarray:
    """Ink float32[H, W] in [0, 1]: a thick hand-drawn 7, off-centre, anti-aliased."""
    supersample = 4
    width, height = CANVAS
    image = Image.new("L", (width * supersample, height * supersample), 0)
    draw = ImageDraw.Draw(image)
    stroke = 9 * supersample
    points = [(30, 25), (95, 22), (70, 75), (55, 118)]
    draw.line([(x * supersample, y * supersample) for x, y in points], fill=255, width=stroke, joint="curve")
    image = image.resize(CANVAS, RESAMPLING.BOX)
    return np.asarray(image, np.float32) / 255


def on_paper(ink: np.ndarray, paper, colour) -> np.ndarray:
    """uint8 pixels of `colour` ink on `paper`, gray (scalars) or RGB (triples)."""
    paper = np.asarray(paper, np.float32)
    colour = np.asarray(colour, np.float32)
    if paper.ndim:
        ink = ink[..., None]
    return np.round(paper * (1 - ink) + colour * ink).astype(np.uint8)


def variants(ink: np.ndarray) -> dict[str, Image.Image]:
    """The same drawing in every mode a user's file might come in."""
    dark_on_light = Image.fromarray(on_paper(ink, 255, 0))
    rgb = Image.fromarray(on_paper(ink, PAPER_RGB, INK_RGB))
    alpha = np.round(ink * 255).astype(np.uint8)
    black_on_clear = np.zeros((*ink.shape, 4), np.uint8)
    black_on_clear[..., 3] = alpha
    white_on_clear = np.full((*ink.shape, 4), 255, np.uint8)
    white_on_clear[..., 3] = alpha
    # Editors leave any colour under fully transparent pixels; only alpha says they are empty.
    hidden_colours = np.random.default_rng(1).integers(0, 256, (*ink.shape, 4), dtype=np.uint8)
    hidden_colours[alpha > 0] = 0
    hidden_colours[..., 3] = alpha
    return {
        "L dark on light": dark_on_light,
        "L light on dark": Image.fromarray(on_paper(ink, 0, 255)),
        "RGB": rgb,
        "RGBA black ink on transparent": Image.fromarray(black_on_clear),
        "RGBA white ink on transparent": Image.fromarray(white_on_clear),
        "RGBA colours under transparency": Image.fromarray(hidden_colours),
        "LA": Image.fromarray(black_on_clear).convert("LA"),
        "P": rgb.quantize(64),
        "I;16": Image.fromarray(np.round(65535 * (1 - ink)).astype(np.uint16)),
        "1": dark_on_light.point(lambda v: 255 if v > 127 else 0).convert("1", dither=DITHER.NONE),
        "JPEG": rgb,
        "GIF black ink on transparent": Image.fromarray(black_on_clear),
    }


def save(image: Image.Image, name: str, directory) -> str:
    suffix = {"JPEG": ".jpg", "GIF": ".gif"}.get(name.split()[0], ".png")
    path = directory / (name.replace(" ", "_").replace(";", "") + suffix)
    image.save(path, **({"quality": 80} if suffix == ".jpg" else {}))
    return path


def mode_of(path) -> str:
    with Image.open(path) as image:
        return image.mode


def centre_of_mass(frame: np.ndarray) -> tuple[float, float]:
    mass = frame.astype(np.float64)
    rows, cols = np.indices(frame.shape)
    return (mass * rows).sum() / mass.sum(), (mass * cols).sum() / mass.sum()


def test_every_mode_gives_the_same_digit(tmp_path, cpu):
    files = {name: save(image, name, tmp_path) for name, image in variants(drawn_seven()).items()}
    # A real 16-bit file, not 8-bit in disguise (Pillow before 9.? opens it as 32-bit "I").
    assert mode_of(files["I;16"]) in ("I;16", "I")
    with Image.open(files["I;16"]) as sixteen:
        assert np.asarray(sixteen).max() > 255
    assert mode_of(files["P"]) == "P"
    with Image.open(files["GIF black ink on transparent"]) as gif:
        assert "transparency" in gif.info
    frames = {name: preprocess.load_image(path) for name, path in files.items()}
    reference = frames["L dark on light"].astype(int)
    for name, frame in frames.items():
        assert frame.dtype == np.uint8 and frame.shape == (28, 28), name
        # Bilevel files (1-bit, GIF's on/off transparency) lose the anti-aliased rim.
        tolerance = 5 if name in ("1", "GIF black ink on transparent") else 1
        assert np.abs(frame.astype(int) - reference).mean() < tolerance, name
    classes = cpu.predict(np.stack(list(frames.values()))).classes
    assert list(classes) == [classes[0]] * len(frames), dict(zip(frames, classes))
    assert classes[0] == 7


def test_uneven_light_on_the_paper_is_not_ink():
    ink = drawn_seven()
    height, width = ink.shape
    # Bright on the left, in shadow on the right and towards the bottom, as under a desk lamp.
    light = np.linspace(1.0, 0.55, width)[None, :] - np.linspace(0, 0.15, height)[:, None]
    photo = np.round(240 * light * (1 - 0.85 * ink)).astype(np.uint8)
    even = preprocess.to_mnist(Image.fromarray(on_paper(ink, 255, 0)))
    uneven = preprocess.to_mnist(Image.fromarray(photo))
    assert np.abs(uneven.astype(int) - even).mean() < 1


def test_large_photo_gives_the_same_digit(tmp_path):
    drawing = Image.fromarray(on_paper(drawn_seven(), 255, 0))
    photo = drawing.resize((drawing.width * 15, drawing.height * 15), RESAMPLING.BICUBIC)
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=85)
    assert max(photo.size) > 2 * preprocess.WORKING_SIDE
    frame = preprocess.load_image(path)
    assert np.abs(frame.astype(int) - preprocess.to_mnist(drawing)).mean() < 1


def test_32_bit_integer_image_holding_16_bit_data():
    ink = drawn_seven()
    wide = Image.fromarray(np.round(65535 * (1 - ink)).astype(np.int32))
    assert wide.mode == "I"
    narrow = Image.fromarray(on_paper(ink, 255, 0))
    assert np.abs(preprocess.to_mnist(wide).astype(int) - preprocess.to_mnist(narrow)).max() <= 2


def test_16_bit_is_scaled_not_clipped():
    # Every level is above 255: clipping to 8 bits would make this one flat white page.
    ink = drawn_seven()
    paper, stroke = 50000, 10000
    sixteen = Image.fromarray(np.round(paper + (stroke - paper) * ink).astype(np.uint16))
    eight = Image.fromarray(np.round((paper + (stroke - paper) * ink) / 257).astype(np.uint8))
    assert np.abs(preprocess.to_mnist(sixteen).astype(int) - preprocess.to_mnist(eight)).max() <= 2


def test_result_is_mnist_form():
    frame = preprocess.to_mnist(Image.fromarray(on_paper(drawn_seven(), 255, 0)))
    rows = np.flatnonzero(frame.any(axis=1))
    cols = np.flatnonzero(frame.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == preprocess.FIT
    assert frame.max() == 255 and frame[0].max() == 0 and frame[:, 0].max() == 0
    assert np.allclose(centre_of_mass(frame), preprocess.CENTRE, atol=0.5)


def test_aspect_ratio_is_kept():
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).rectangle((40, 30, 69, 119), fill=0)  # 30 wide, 90 tall
    frame = preprocess.to_mnist(image)
    rows = np.flatnonzero(frame.any(axis=1))
    cols = np.flatnonzero(frame.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20
    assert cols[-1] - cols[0] + 1 in (7, 8, 9)  # 30 * 20/90 = 6.7, plus LANCZOS's soft edge


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(image).rectangle((10, 55, 109, 64), fill=0)  # a horizontal bar as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned, display rotated by 90 degrees
    path = tmp_path / "turned.jpg"
    image.save(path, exif=exif, quality=90)
    frame = preprocess.load_image(path)
    rows = np.flatnonzero(frame.any(axis=1))
    cols = np.flatnonzero(frame.any(axis=0))
    assert rows[-1] - rows[0] > cols[-1] - cols[0]  # upright, it is a vertical bar


def test_mnist_images_come_back_nearly_unchanged(tmp_path, mnist_test, cpu):
    # mnist_test (tests/conftest.py) skips when MNIST is not beside the checkout.
    images = mnist_test[0][:100]
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"mnist_{index}.png")
        Image.fromarray(image).save(paths[-1])
    frames = np.stack([preprocess.load_image(path) for path in paths])
    agree = (cpu.predict(frames).classes == cpu.predict(images).classes).sum()
    assert agree >= 97
    assert np.abs(frames.astype(int) - images).mean() < 1


@pytest.mark.parametrize(
    "blank",
    [
        Image.new("L", (64, 64), 255),
        Image.new("L", (64, 64), 0),
        Image.new("RGB", (64, 64), PAPER_RGB),
        Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
        # Random colours, all fully transparent (the lookup table maps every alpha to 0).
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        .convert("RGBA")
        .point([*range(256)] * 3 + [0] * 256),
        Image.new("I;16", (64, 64), 40000),
    ],
    ids=["white", "black", "paper", "transparent", "transparent over colours", "16-bit gray"],
)
def test_blank_image_is_refused(tmp_path, blank):
    path = tmp_path / "blank.png"
    blank.save(path)
    with pytest.raises(preprocess.ImageError, match=r"blank") as caught:
        preprocess.load_image(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_blank_noisy_photo_is_refused(tmp_path):
    # Paper grain and JPEG noise are not ink.
    noise = np.random.default_rng(0).normal(220, 4, (300, 400)).clip(0, 255).astype(np.uint8)
    path = tmp_path / "blank.jpg"
    Image.fromarray(noise).save(path, quality=60)
    with pytest.raises(preprocess.ImageError, match=r"blank"):
        preprocess.load_image(path)


def test_faint_speckles_do_not_widen_the_crop():
    ink = drawn_seven()
    ink[2:4, 2:4] = 0.05  # a speck of dust in the corner
    clean = preprocess.to_mnist(Image.fromarray(on_paper(drawn_seven(), 255, 0)))
    dusty = preprocess.to_mnist(Image.fromarray(on_paper(ink, 255, 0)))
    # A crop widened to the speck would shrink and move the digit, changing its strokes by far
    # more than one grey level.  One level is allowed: the levels come through the paper's
    # least-squares fit (LAPACK), which may round a level the other way with four points fewer.
    assert np.abs(clean.astype(int) - dusty).max() <= 1


def test_image_error_is_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ValueError, match="missing.png: no such file"):
        preprocess.load_image(path)


def test_mnist_test_images_as_png_are_unchanged(tmp_path, mnist_test, cpu):
    # The first 1,000 test images, saved as PNG and read back, are exactly what the network
    # saw before (MNIST's frame takes the MNIST-like path, all ink kept, levels untouched).
    images, labels = mnist_test[0][:1000], mnist_test[1][:1000]
    frames = []
    for index, image in enumerate(images):
        path = tmp_path / f"{index}.png"
        Image.fromarray(image).save(path)
        frames.append(preprocess.load_image(path))
    frames = np.stack(frames)
    identical = sum(np.array_equal(f, i) for f, i in zip(frames, images))
    assert identical == len(images)
    assert (cpu.predict(frames).classes == labels).mean() >= 0.991


def photo_of(ink: np.ndarray, paper: np.ndarray, light: np.ndarray | float = 1.0, colour=(25, 30, 90)) -> Image.Image:
    """RGB photo: `ink` coverage over `paper` (RGB float), lit by `light`."""
    pixels = paper * (1 - ink[..., None]) + np.asarray(colour, np.float32) * ink[..., None]
    pixels = pixels * (light[..., None] if np.ndim(light) else light)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def on_frame(ink: np.ndarray, shape, top: int, left: int) -> np.ndarray:
    frame = np.zeros(shape, np.float32)
    frame[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return frame


def test_small_digit_off_centre_in_a_large_photo(cpu):
    # The seven 140 pixels tall in a 900-pixel frame, near a corner, with specks of dust.
    ink = on_frame(drawn_seven(), (900, 1200), 60, 900)
    rng = np.random.default_rng(3)
    for y, x in rng.integers(0, 880, (12, 2)):
        ink[y : y + 4, x : x + 4] = 0.8
    paper = np.full((900, 1200, 3), PAPER_RGB, np.float32)
    frame = preprocess.to_mnist(photo_of(ink, paper))
    plain = preprocess.to_mnist(Image.fromarray(on_paper(drawn_seven(), 255, 0)))
    # The photo is worked on at half size (WORKING_SIDE): the same digit, sampled differently.
    assert np.abs(frame.astype(int) - plain).mean() < 4
    assert cpu.predict(frame).classes[0] == 7


def ruled(shape, spacing: int, squared: bool) -> np.ndarray:
    """Coverage of light printed lines, 2 pixels thick."""
    lines = np.zeros(shape, np.float32)
    lines[spacing // 2 :: spacing] = 0.6
    lines[spacing // 2 + 1 :: spacing] = 0.6
    if squared:
        lines[:, spacing // 2 :: spacing] = 0.6
        lines[:, spacing // 2 + 1 :: spacing] = 0.6
    return lines


@pytest.mark.parametrize("squared", [False, True], ids=["ruled", "squared"])
def test_printed_lines_are_not_the_digit(squared, cpu):
    shape = (400, 500)
    ink = on_frame(drawn_seven(), shape, 120, 150)
    lines = ruled(shape, 24, squared)
    paper = np.full((*shape, 3), (250, 250, 246), np.float32)
    paper = paper * (1 - lines[..., None]) + np.array([150, 180, 225], np.float32) * lines[..., None]
    found = preprocess.analyse(photo_of(ink, paper))
    plain = preprocess.to_mnist(Image.fromarray(on_paper(drawn_seven(), 255, 0)))
    outside = np.ones(shape, bool)
    outside[120 : 120 + CANVAS[1], 150 : 150 + CANVAS[0]] = False
    assert not found.digit[outside].any()  # no line kept with the digit
    assert np.abs(found.frame.astype(int) - plain).mean() < 6  # lines crossing it leave traces
    assert cpu.predict(found.frame).classes[0] == 7


def test_a_blank_ruled_page_is_refused():
    shape = (300, 400)
    lines = ruled(shape, 20, True)
    paper = np.full((*shape, 3), (248, 246, 240), np.float32)
    page = paper * (1 - lines[..., None]) + np.array([160, 160, 170], np.float32) * lines[..., None]
    with pytest.raises(preprocess.ImageError, match="blank"):
        preprocess.to_mnist(Image.fromarray(page.astype(np.uint8)))


def test_shadow_and_dark_corner_are_not_ink(cpu):
    shape = (480, 640)
    ink = on_frame(drawn_seven(), shape, 200, 380)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    # A soft-edged shadow over the left part and a dark corner at the bottom right.
    shade = 1 - 0.45 / (1 + np.exp(-(300 - cols - 0.3 * rows) / 25))
    corner = 1 - 0.4 * np.exp(-((rows - 480) ** 2 + (cols - 640) ** 2) / (2 * 70**2))
    paper = np.full((*shape, 3), PAPER_RGB, np.float32)
    found = preprocess.analyse(photo_of(ink, paper, shade * corner))
    rows_kept = np.flatnonzero(found.digit.any(axis=1))
    cols_kept = np.flatnonzero(found.digit.any(axis=0))
    assert rows_kept[0] >= 200 and rows_kept[-1] < 200 + CANVAS[1]
    assert cols_kept[0] >= 380 and cols_kept[-1] < 380 + CANVAS[0]
    assert cpu.predict(found.frame).classes[0] == 7


def test_chalk_on_a_board_is_light_ink(cpu):
    shape = (360, 480)
    ink = on_frame(drawn_seven(), shape, 90, 120)
    board = np.full((*shape, 3), (40, 62, 52), np.float32)
    light = np.linspace(1.0, 0.6, shape[1], dtype=np.float32)[None, :].repeat(shape[0], 0)
    found = preprocess.analyse(photo_of(ink, board, light, colour=(225, 225, 215)))
    plain = preprocess.to_mnist(Image.fromarray(on_paper(drawn_seven(), 255, 0)))
    assert found.light_ink
    assert np.abs(found.frame.astype(int) - plain).mean() < 2
    assert cpu.predict(found.frame).classes[0] == 7


def test_bold_digit_filling_the_frame_is_dark_ink():
    image = Image.new("L", (150, 150), 240)
    ImageDraw.Draw(image).ellipse((25, 15, 125, 135), outline=20, width=28)  # a bold 0
    found = preprocess.analyse(image)
    assert not found.light_ink
    assert found.frame[14, 14] < 60 and found.frame.max() == 255  # the hole stays paper


def test_a_page_of_text_is_refused():
    image = Image.new("L", (480, 360), 245)
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(5)
    for row in range(8):
        for col in range(14):
            x, y = 16 + 32 * col, 20 + 42 * row
            points = [(x + int(a), y + int(b)) for a, b in rng.integers(0, 22, (4, 2))]
            draw.line(points, fill=30, width=3)
    with pytest.raises(preprocess.ImageError, match="no single digit"):
        preprocess.to_mnist(image)
