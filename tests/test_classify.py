"""The classify command line and the shipped sample digits."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet5_pynq import classify, preprocess, sample_digits, samples
from lenet5_pynq.backends import BackendUnavailable, load_backend

REPO = Path(__file__).resolve().parents[1]
SAMPLE_LINE = re.compile(r"^digit_(\d)\.png: \1 \(\d{1,3}\.\d%\) \[cpu\]$")


@pytest.fixture
def good(tmp_path) -> Path:
    """A readable picture of a 3: a shipped sample, copied so that its path is short."""
    path = tmp_path / "three.png"
    path.write_bytes(sample_digits.paths()[3].read_bytes())
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but which holds one pixel's worth of data."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # Signature (8 bytes), IHDR length (4) and type (4), then width, height, 5 more header bytes, CRC.
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:33] = header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def truncated(image_format: str) -> bytes:
    buffer = io.BytesIO()
    with Image.open(sample_digits.paths()[3]) as image:
        image.save(buffer, image_format)
    return buffer.getvalue()[: buffer.tell() // 2]


def white_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, "PNG")
    return buffer.getvalue()


# kind -> (file name; contents: bytes, a function making them, None for no file or "dir";
#          words the error message must have)
BAD_FILES = {
    "missing": ("missing.png", None, "no such file"),
    "directory": ("folder.png", "dir", "directory"),
    "empty": ("empty.png", b"", "empty file"),
    "text": ("notes.txt", b"not a picture, just some words\n", "not an image"),
    "text named png": ("notes.png", b"not a picture, just some words\n", "not an image"),
    "truncated PNG": ("cut.png", lambda: truncated("PNG"), "truncated"),
    "truncated JPEG": ("cut.jpg", lambda: truncated("JPEG"), "truncated"),
    "over our pixel limit": ("huge.png", lambda: png_claiming(7000, 7000), "megapixels"),
    "over pillow's warning limit": ("bomb.png", lambda: png_claiming(10000, 10000), "decompression bomb"),
    "over pillow's error limit": ("bomb.png", lambda: png_claiming(20000, 20000), "decompression bomb"),
    "blank": ("blank.png", white_png, "blank"),
}


def make_bad(tmp_path: Path, kind: str) -> tuple[Path, str]:
    name, contents, words = BAD_FILES[kind]
    path = tmp_path / name
    if contents == "dir":
        path.mkdir()
    elif contents is not None:
        path.write_bytes(contents() if callable(contents) else contents)
    return path, words


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_named_and_the_rest_classified(tmp_path, good, capsys, kind):
    bad, words = make_bad(tmp_path, kind)
    status = classify.main([str(good), str(bad), "--backend", "cpu"])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: ") and words in err, err
    assert re.fullmatch(rf"{re.escape(str(good))}: 3 \(\d+\.\d%\) \[cpu\]\n", out), out
    with pytest.raises(preprocess.ImageError, match=re.escape(f"{bad}: ")):
        preprocess.load_image(bad)


def test_bad_file_in_json_has_path_and_error(tmp_path, good, capsys):
    bad, _ = make_bad(tmp_path, "truncated PNG")
    status = classify.main([str(bad), str(good), "--backend", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.startswith(f"error: {bad}: ")
    failed, classified = json.loads(out)
    assert set(failed) == {"path", "error"} and failed["path"] == str(bad)
    assert failed["error"].startswith(f"{bad}: damaged or truncated image")
    assert classified["path"] == str(good) and classified["digit"] == 3


def test_only_bad_files(tmp_path, capsys):
    status = classify.main([str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--backend", "cpu"])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err.splitlines() == [f"error: {tmp_path / name}: no such file" for name in ("a.png", "b.png")]


@pytest.mark.parametrize(
    "argv",
    [[], ["--top", "0"], ["--top", "11"], ["--top", "two"], ["--backend", "abacus"], ["--colour"]],
    ids=["nothing to classify", "top 0", "top 11", "top not a number", "unknown backend", "unknown option"],
)
def test_usage_error_exits_2(good, capsys, argv):
    status = classify.main(([str(good)] if argv else []) + argv)
    _, err = capsys.readouterr()
    assert status == 2
    assert "error:" in err.splitlines()[-1] and "Traceback" not in err


def test_backend_that_cannot_load_exits_2(good, capsys, monkeypatch):
    def unavailable(name, **kwargs):
        raise BackendUnavailable("no board here")

    monkeypatch.setattr(classify, "load_backend", unavailable)
    status = classify.main([str(good), "--backend", "cpu"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err == "error: backend cpu: no board here\n"


def test_all_images_go_in_one_batch(good, capsys, monkeypatch):
    calls = []

    class Counting:
        def __init__(self):
            self.inner = load_backend("cpu")
            self.name = self.inner.name

        def predict(self, images):
            calls.append(np.shape(images))
            return self.inner.predict(images)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(classify, "load_backend", lambda name, **kwargs: Counting())
    assert classify.main([str(good), str(sample_digits.paths()[7]), str(good)]) == 0
    assert calls == [(3, 28, 28)]
    assert [line.split(": ")[1][0] for line in capsys.readouterr().out.splitlines()] == ["3", "7", "3"]


def test_top_k_lists_the_k_best(good, capsys):
    assert classify.main([str(good), "--backend", "cpu", "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    best, top = line.split("  top: ")
    assert best.startswith(f"{good}: 3 (")
    ranked = [entry.split() for entry in top.split(", ")]
    assert len(ranked) == 3 and ranked[0][0] == "3"
    assert [float(p.rstrip("%")) for _, p in ranked] == sorted((float(p.rstrip("%")) for _, p in ranked), reverse=True)


def test_samples_are_shipped():
    paths = sample_digits.paths()
    assert [p.name for p in paths] == [f"digit_{d}.png" for d in range(10)]
    for path in paths:
        assert path.stat().st_size < 16_000, path
        with Image.open(path) as image:
            assert min(image.size) >= 112, path
            assert np.median(np.asarray(image.convert("L"))) > 160, f"{path} should be dark ink on light paper"
    assert "CC BY-SA 3.0" in (sample_digits.SAMPLES_DIR / "README.md").read_text()


def test_samples_are_classified_correctly():
    frames = np.stack([preprocess.load_image(path) for path in sample_digits.paths()])
    with load_backend("cpu") as backend:
        assert list(backend.predict(frames).classes) == list(range(10))


def test_samples_flag(capsys):
    assert classify.main(["--samples", "--backend", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    for digit, line in enumerate(lines):
        assert SAMPLE_LINE.match(line) and line.startswith(f"digit_{digit}.png"), line


def test_samples_flag_json(capsys):
    assert classify.main(["--samples", "--backend", "cpu", "--json", "--top", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["digit"] for r in results] == list(range(10))
    for result, path in zip(results, sample_digits.paths()):
        assert set(result) == {"path", "digit", "confidence", "top", "backend"}
        assert result["path"] == str(path) and result["backend"] == "cpu"
        assert len(result["top"]) == 3
        assert result["top"][0] == {"digit": result["digit"], "probability": result["confidence"]}
        probabilities = [t["probability"] for t in result["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0.5 < probabilities[0] <= 1


def test_samples_readme_names_their_sources(mnist_test):
    """The README's test-set indices, rendered again, give exactly the shipped pixels."""
    images, labels = mnist_test
    readme = (sample_digits.SAMPLES_DIR / "README.md").read_text()
    indices = dict(re.findall(r"(\d): (\d+)", readme.split("index of each digit:")[1]))
    assert sorted(int(d) for d in indices) == list(range(10))
    for digit, path in enumerate(sample_digits.paths()):
        index = int(indices[str(digit)])
        assert labels[index] == digit
        with Image.open(path) as shipped:
            assert np.array_equal(np.asarray(shipped), np.asarray(samples.render(images[index], digit))), path


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "lenet5_pynq.classify", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_exit_codes_of_the_real_process(tmp_path, good):
    bad, _ = make_bad(tmp_path, "truncated JPEG")
    done = run_module(str(good), str(bad), "--backend", "cpu")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {bad}: damaged or truncated image") and done.stderr.count("\n") == 1
    assert done.stdout.startswith(f"{good}: 3 (")

    usage = run_module(str(good), "--top", "0")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr

    fine = run_module("--samples")
    assert fine.returncode == 0 and len(fine.stdout.splitlines()) == 10


def test_regenerating_samples_without_mnist_is_a_clear_error(tmp_path, capsys):
    assert samples.main(["--mnist", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: not a directory\n"
    assert not (tmp_path / "out").exists()


def test_debug_dir_holds_what_the_network_saw(tmp_path, good, capsys):
    bad, _ = make_bad(tmp_path, "truncated PNG")
    debug = tmp_path / "debug" / "run1"  # made, parents and all
    again = tmp_path / "copy"
    again.mkdir()
    (again / "three.png").write_bytes(good.read_bytes())  # the same name from another folder
    status = classify.main(
        [str(good), str(bad), str(again / "three.png"), "--backend", "cpu", "--json", "--debug-dir", str(debug)]
    )
    assert status == 1  # the truncated file
    results = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in debug.iterdir()) == [
        "three-2.input.png",
        "three-2.mask.png",
        "three.input.png",
        "three.mask.png",
    ]  # nothing for the bad file, no temporary files left
    assert results[0]["debug"] == {"input": str(debug / "three.input.png"), "mask": str(debug / "three.mask.png")}
    assert "debug" not in results[1]
    with Image.open(debug / "three.input.png") as seen:
        assert np.array_equal(np.asarray(seen), preprocess.load_image(good))
    with Image.open(debug / "three.mask.png") as mask, Image.open(good) as picture:
        assert mask.mode == "RGB" and mask.size == picture.size
        pixels = np.asarray(mask)
        assert (pixels == 255).all(axis=2).any()  # the digit, in white


def test_debug_dir_that_is_a_file_is_a_usage_error(tmp_path, good, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    status = classify.main([str(good), "--backend", "cpu", "--debug-dir", str(blocker)])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.splitlines()[-1].endswith(f"argument --debug-dir: {blocker} is a file, not a directory")


def test_debug_dir_that_cannot_be_made_is_a_usage_error(tmp_path, good, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    inside = blocker / "debug"
    status = classify.main([str(good), "--backend", "cpu", "--debug-dir", str(inside)])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and not inside.exists()
    assert err.startswith(f"error: --debug-dir {inside}: ") and err.count("\n") == 1


def test_debug_dir_inside_the_package_is_refused(good, capsys):
    from lenet5_pynq import atomic

    inside = atomic.PACKAGE_DIR / "debug-output"
    status = classify.main([str(good), "--backend", "cpu", "--debug-dir", str(inside)])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and not inside.exists()
    assert err.startswith(f"error: --debug-dir {inside}: ") and "inside the installed package" in err


def test_debug_dir_for_the_samples(tmp_path, capsys):
    assert classify.main(["--samples", "--backend", "cpu", "--debug-dir", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"digit_{d}.{kind}.png" for d in range(10) for kind in ("input", "mask"))
