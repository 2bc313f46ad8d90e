"""Every image pillow opens gives a digit or one line naming the file: extreme aspect ratios,
NaN and infinite pixels, and faults inside preprocessing; one bad file never stops the rest."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from lenet5_pynq import classify, preprocess

SIDES = (1, 2, 3, 7, 8, 27, 28, 29, 64, 1100, 3000)


def _float_picture(poison: float | None) -> Image.Image:
    """A dark bar on white paper as a 32-bit float image, one pixel set to `poison`."""
    pixels = np.ones((100, 100), np.float32)
    pixels[30:70, 45:55] = 0
    if poison is not None:
        pixels[3, 3] = poison
    return Image.fromarray(pixels, "F")


@pytest.mark.parametrize("shape", [s for s in itertools.product(SIDES, SIDES) if s[0] * s[1] <= 3000 * 64])
@pytest.mark.parametrize("content", ["noise", "paper", "bar"])
def test_any_shape_gives_a_digit_or_a_one_line_error(shape, content):
    rng = np.random.default_rng(shape[0] * 7919 + shape[1])
    height, width = shape
    if content == "noise":
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        pixels = np.full(shape, 235, np.uint8)
        if content == "bar":
            pixels[height // 4 : 3 * height // 4 + 1, width // 2 : width // 2 + max(1, width // 10)] = 20
    try:
        frame = preprocess.to_mnist(Image.fromarray(pixels))
    except preprocess.ImageError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert frame.shape == (28, 28) and frame.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1, 1100), (2, 3000), (5000, 3), (7, 900)])
def test_strips_too_thin_for_a_digit_are_refused(shape):
    with pytest.raises(preprocess.ImageError, match=r"too thin to hold one"):
        preprocess.to_mnist(Image.fromarray(np.full(shape, 200, np.uint8)))


def test_a_digit_in_a_long_strip_is_read():
    # A 3000x40 strip with a "1" 30 pixels tall: the strip is reduced by its area, not its length.
    pixels = np.full((40, 3000), 240, np.uint8)
    pixels[5:35, 1500:1505] = 20
    assert preprocess.to_mnist(Image.fromarray(pixels)).max() > 200


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_pixels_are_not_a_picture(poison):
    with pytest.raises(preprocess.ImageError, match=r"not a picture of a digit: 1 of its pixels are NaN or infinite"):
        preprocess.to_mnist(_float_picture(poison))


def test_a_finite_float_picture_is_read():
    assert preprocess.to_mnist(_float_picture(None)).max() == 255


def test_bad_files_do_not_stop_the_others_and_json_names_each(tmp_path, capsys):
    good = tmp_path / "good.tif"
    _float_picture(None).save(good)
    bad = {}
    for name, poison in (("nan", float("nan")), ("inf", float("inf"))):
        bad[name] = tmp_path / f"{name}.tif"
        _float_picture(poison).save(bad[name])
    bad["strip"] = tmp_path / "strip.png"
    Image.fromarray(np.zeros((1, 1100), np.uint8)).save(bad["strip"])
    paths = [bad["nan"], good, bad["strip"], bad["inf"]]
    status = classify.main([*map(str, paths), "--backend", "cpu", "--json"])
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert status == classify.EXIT_BAD_FILE
    assert [r["path"] for r in results] == [str(p) for p in paths]
    assert "digit" in results[1] and "error" not in results[1]
    for index in (0, 2, 3):
        assert results[index]["error"].startswith(str(paths[index]) + ": ") and "digit" not in results[index]
    assert sorted(err.splitlines()) == sorted(f"error: {results[i]['error']}" for i in (0, 2, 3))


def test_a_fault_inside_preprocessing_is_that_file_s_error(tmp_path, capsys, monkeypatch):
    paths = []
    for name in ("first", "broken", "last"):
        paths.append(tmp_path / f"{name}.tif")
        _float_picture(None).save(paths[-1])
    real = preprocess.load

    def load(path):
        if "broken" in str(path):
            raise RuntimeError("simulated fault\nover two lines")
        return real(path)

    monkeypatch.setattr(preprocess, "load", load)
    status = classify.main([*map(str, paths), "--backend", "cpu", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert status == classify.EXIT_BAD_FILE
    assert "digit" in results[0] and "digit" in results[2]
    assert results[1]["error"] == f"{paths[1]}: cannot read it (RuntimeError: simulated fault over two lines)"
