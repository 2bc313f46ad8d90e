import gzip

import numpy as np
import pytest

from lenet5_pynq import mnist


def _write_idx(path, magic, shape, payload, compress=False):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    data = header + payload
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)


def _fake_dir(tmp_path, n=3, compress=False, **overrides):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    files = {
        "t10k-images-idx3-ubyte": (mnist.IMAGES_MAGIC, (n, 28, 28), rng.integers(0, 256, n * 784, np.uint8).tobytes()),
        "t10k-labels-idx1-ubyte": (mnist.LABELS_MAGIC, (n,), bytes(range(n))),
    }
    files.update(overrides)
    for name, (magic, shape, payload) in files.items():
        _write_idx(tmp_path / (name + suffix), magic, shape, payload, compress)
    return tmp_path


def test_shared_mnist_loads(mnist_dir):
    images, labels = mnist.load(mnist_dir, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))
    test_images, test_labels = mnist.load(mnist_dir, "test")
    assert test_images.shape == (10000, 28, 28) and len(test_labels) == 10000
    assert np.bincount(test_labels).tolist()[:3] == [980, 1135, 1032]  # the published class counts


@pytest.mark.parametrize("compress", [False, True])
def test_raw_and_gzip(tmp_path, compress):
    images, labels = mnist.load(_fake_dir(tmp_path, compress=compress), "test")
    assert images.shape == (3, 28, 28) and labels.tolist() == [0, 1, 2]


def test_truncated_file(tmp_path):
    magic, shape, payload = mnist.IMAGES_MAGIC, (3, 28, 28), bytes(3 * 784 - 5)
    d = _fake_dir(tmp_path, **{"t10k-images-idx3-ubyte": (magic, shape, payload)})
    with pytest.raises(
        mnist.MnistFormatError, match=r"t10k-images-idx3-ubyte: 2363 bytes, header \(3, 28, 28\) needs 2368"
    ):
        mnist.load(d, "test")


def test_wrong_magic(tmp_path):
    d = _fake_dir(tmp_path, **{"t10k-labels-idx1-ubyte": (mnist.IMAGES_MAGIC, (3,), bytes(3))})
    with pytest.raises(mnist.MnistFormatError, match="magic number 0x00000803, expected 0x00000801"):
        mnist.load(d, "test")


def test_wrong_dimensions_and_counts(tmp_path):
    d = _fake_dir(tmp_path, **{"t10k-images-idx3-ubyte": (mnist.IMAGES_MAGIC, (3, 32, 32), bytes(3 * 1024))})
    with pytest.raises(mnist.MnistFormatError, match=r"\(32, 32\), expected \(28, 28\)"):
        mnist.load(d, "test")
    d = _fake_dir(tmp_path, **{"t10k-labels-idx1-ubyte": (mnist.LABELS_MAGIC, (2,), bytes(2))})
    with pytest.raises(mnist.MnistFormatError, match="3 test images but 2 labels"):
        mnist.load(d, "test")


def test_missing_and_damaged(tmp_path):
    with pytest.raises(mnist.MnistFormatError, match="not a directory"):
        mnist.load(tmp_path / "nowhere", "test")
    with pytest.raises(mnist.MnistFormatError, match="no t10k-images"):
        mnist.load(tmp_path, "test")
    d = _fake_dir(tmp_path, compress=True)
    gz = d / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(mnist.MnistFormatError, match="cannot read"):
        mnist.load(d, "test")
    with pytest.raises(ValueError, match="split"):
        mnist.load(d, "validation")


def test_default_dir_is_relative_to_the_working_directory(monkeypatch, tmp_path):
    """Not beside the package (site-packages, once installed): $LENET5_MNIST, else ../shared/mnist
    of the working directory (the repository's root when the tests run)."""
    (tmp_path / "shared" / "mnist").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path / "repo")
    assert mnist.default_dir() == (tmp_path / "shared" / "mnist").resolve()
    monkeypatch.chdir(tmp_path)
    assert mnist.default_dir() is None
    with pytest.raises(mnist.MnistFormatError, match=r"\$LENET5_MNIST is not set and there is no \.\./shared/mnist in"):
        mnist.load(None, "test")
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "elsewhere"))
    assert mnist.default_dir() == tmp_path / "elsewhere"  # the variable comes first
