"""classify reads photographs: photo-like pictures of single digits, made by tests/photo_digits.py.

The preprocessing was developed and looked at on photo_digits.DEV_SEED only; these tests
measure the held-out photo_digits.TEST_SEED, which nothing was tuned on.  The pictures are
generated afresh (a few seconds), written as the JPEG files a user would have, and classified
through the command line in one batch on the cpu-float backend.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import photo_digits
import pytest

from lenet5_pynq import classify

COUNT = 300  # pictures of the held-out seed: about 20 s to make and 20 s to read on 2 cores
MIN_ACCURACY = 0.95
BACKEND = "cpu-float"
TAGS = ("source", "paper", "ink", "light", "size")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """The held-out pictures and their files (those in missing fonts left out)."""
    photos = photo_digits.make(photo_digits.TEST_SEED, COUNT)
    directory = tmp_path_factory.mktemp("photos")
    paths = []
    for index, photo in enumerate(photos):
        paths.append(directory / f"{index:03d}_digit{photo.digit}.jpg")
        paths[-1].write_bytes(photo.jpeg)
    return photos, paths


def by_category(photos, right, tags=TAGS) -> str:
    """``paper: plain 98% (110), ruled ...`` per tag, one line each."""
    lines = []
    for tag in tags:
        groups = collections.defaultdict(list)
        for photo, ok in zip(photos, right):
            groups[photo.tags[tag]].append(ok)
        lines.append(f"{tag}: " + ", ".join(f"{k} {np.mean(v):.0%} ({len(v)})" for k, v in sorted(groups.items())))
    return "\n".join(lines)


def test_classify_reads_photos(held_out, capsys):
    photos, paths = held_out
    assert len(photos) >= 0.6 * COUNT  # the drawn digits alone are 70%: fonts or no fonts
    classify.main([*map(str, paths), "--backend", BACKEND, "--json"])
    out, _err = capsys.readouterr()
    results = json.loads(out)
    right = [result.get("digit") == photo.digit for result, photo in zip(results, photos)]
    accuracy = float(np.mean(right))
    wrong = [f"{p.name}: {r.get('digit', r.get('error'))}" for p, r, ok in zip(paths, results, right) if not ok]
    summary = f"{accuracy:.1%} of {len(photos)} right\n{by_category(photos, right)}\nwrong: {wrong}"
    print(summary)
    assert accuracy >= MIN_ACCURACY, summary


def test_classify_reads_photos_of_real_handwriting(tmp_path, mnist_test, capsys):
    # MNIST's test digits, people's own handwriting, written large on paper and photographed
    # by the same generator; the seed is TEST_SEED and nothing was tuned on these either.
    images, labels = mnist_test
    photos = [photo_digits.handwritten(photo_digits.TEST_SEED, i, images, labels) for i in range(COUNT)]
    paths = []
    for index, photo in enumerate(photos):
        paths.append(tmp_path / f"{index:03d}_digit{photo.digit}.jpg")
        paths[-1].write_bytes(photo.jpeg)
    classify.main([*map(str, paths), "--backend", BACKEND, "--json"])
    results = json.loads(capsys.readouterr().out)
    right = [result.get("digit") == photo.digit for result, photo in zip(results, photos)]
    accuracy = float(np.mean(right))
    summary = f"{accuracy:.1%} of {len(photos)} right\n{by_category(photos, right, TAGS[1:])}"
    print(summary)
    assert accuracy >= MIN_ACCURACY, summary


def test_pictures_are_the_same_every_time():
    fonts = photo_digits.font_paths()
    for index in (0, 7, 31):
        first, again = (
            photo_digits.one(photo_digits.TEST_SEED, index, fonts),
            photo_digits.one(photo_digits.TEST_SEED, index, fonts),
        )
        assert (first is None) == (again is None)
        if first is not None:
            assert first.jpeg == again.jpeg and first.digit == again.digit


def test_drawn_pictures_do_not_depend_on_fonts():
    with_fonts = photo_digits.make(photo_digits.TEST_SEED, 20)
    drawn = {p.jpeg for p in with_fonts if p.tags["source"] == "drawn"}
    without = [photo_digits.one(photo_digits.TEST_SEED, i, {}) for i in range(20)]
    assert {p.jpeg for p in without if p is not None} == drawn


def test_seeds_are_disjoint():
    assert photo_digits.DEV_SEED != photo_digits.TEST_SEED
    dev = [photo_digits.one(photo_digits.DEV_SEED, i, {}) for i in range(10)]
    test = [photo_digits.one(photo_digits.TEST_SEED, i, {}) for i in range(10)]
    assert not {p.jpeg for p in dev if p} & {p.jpeg for p in test if p}


@pytest.mark.parametrize("kind", ["blank", "text"], ids=["blank pages", "pages of text"])
def test_pictures_without_a_digit_are_refused(tmp_path, capsys, kind):
    make = photo_digits.blank_page if kind == "blank" else photo_digits.text_page
    paths = []
    for index in range(9):  # plain, ruled and squared paper; even light, a gradient, a shadow
        paths.append(tmp_path / f"{kind}_{index}.jpg")
        paths[-1].write_bytes(make(photo_digits.TEST_SEED, index).jpeg)
    status = classify.main([*map(str, paths), "--backend", BACKEND])
    out, err = capsys.readouterr()
    assert status == classify.EXIT_BAD_FILE and out == ""
    lines = err.splitlines()
    assert len(lines) == len(paths), err
    for path, line in zip(paths, lines):
        assert line.startswith(f"error: {path}: no ink found: ") or line.startswith(
            f"error: {path}: no single digit found: "
        ), line
    if kind == "blank":
        assert all("blank" in line for line in lines), err
    else:  # text too blurred to read may pass for specks on a blank page; most is seen as text
        assert sum("no single digit" in line for line in lines) >= 2 * len(lines) / 3, err
