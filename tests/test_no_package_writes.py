"""Commands never write inside the installed package (issue 11, part 4): `quantize` writes
beside the given weights or to --out, refuses to replace a shipped file, and leaves no stray
temporary file; the spec is written atomically."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from lenet5_pynq import fixedspec, quantize, weights
from lenet5_pynq.atomic import PACKAGE_DIR, OutputError, check_outside_package


@pytest.fixture
def tiny_mnist(tiny_mnist):
    """The ten-image test split, also as the training split (quantize calibrates on it)."""
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        shutil.copy(tiny_mnist / f"t10k-{kind}", tiny_mnist / f"train-{kind}")
    return tiny_mnist


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def shipped_digests():
    files = [fixedspec.SHIPPED, weights.SHIPPED]
    before = {p: _digest(p) for p in files}
    yield
    assert {p: _digest(p) for p in files} == before, "a shipped file changed"


def test_quantize_without_weights_or_out_refuses_the_shipped_spec(tiny_mnist, shipped_digests, capsys):
    with pytest.raises(SystemExit) as info:
        quantize.main(["--mnist", str(tiny_mnist)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to write inside the installed package" in err and "fixed_spec.json" in err and "--out" in err


@pytest.mark.parametrize("target", ["data/fixed_spec.json", "data/other.json", "elsewhere.json"])
def test_quantize_out_inside_the_package_is_refused(tiny_mnist, shipped_digests, target, capsys):
    with pytest.raises(SystemExit) as info:
        quantize.main(["--mnist", str(tiny_mnist), "--out", str(PACKAGE_DIR / target)])
    assert info.value.code == 2
    assert not (PACKAGE_DIR / "data" / "other.json").exists() and not (PACKAGE_DIR / "elsewhere.json").exists()


def test_quantize_writes_beside_the_given_weights(tiny_mnist, tmp_path, shipped_digests, capsys):
    w = tmp_path / "mine.npz"
    shutil.copy(weights.SHIPPED, w)
    assert quantize.main(["--mnist", str(tiny_mnist), "--weights", str(w), "--calibration", "10"]) == 0
    out = tmp_path / "fixed_spec.json"
    assert f"wrote {out}" in capsys.readouterr().out
    fixedspec.load(out, w)


def test_quantize_out_directory_gets_fixed_spec_json_and_no_stray_temp(tiny_mnist, tmp_path, shipped_digests, capsys):
    out_dir = tmp_path / "specs"
    out_dir.mkdir()
    assert quantize.main(["--mnist", str(tiny_mnist), "--out", str(out_dir), "--calibration", "10"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["fixed_spec.json"]
    assert f"wrote {out_dir / 'fixed_spec.json'}" in capsys.readouterr().out


def test_quantize_checks_the_output_before_the_work(tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quantize, "choose_spec", lambda *a, **k: pytest.fail("worked before checking --out"))
    with pytest.raises(SystemExit) as info:
        quantize.main(["--mnist", str(tiny_mnist), "--out", str(tmp_path / "missing" / "spec.json")])
    assert info.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_check_outside_package_follows_dotdot_and_symlinks(tmp_path):
    with pytest.raises(OutputError):
        check_outside_package(PACKAGE_DIR / "data" / ".." / "x.json")
    link = tmp_path / "link"
    link.symlink_to(PACKAGE_DIR / "data")
    with pytest.raises(OutputError):
        check_outside_package(link / "fixed_spec.json")
    assert check_outside_package(tmp_path / "ok.json") == tmp_path / "ok.json"
