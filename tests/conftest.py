import numpy as np
import pytest

from lenet5_pynq import mnist


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST directory, or a skip that says where it was looked for (tests never download)."""
    directory = mnist.default_dir()
    if directory is None:
        pytest.skip(f"no MNIST: ${mnist.ENV_VAR} is not set and there is no ../shared/mnist in the working directory")
    if not directory.is_dir():
        pytest.skip(f"no MNIST: ${mnist.ENV_VAR}={directory} is not a directory")
    return directory


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    return mnist.load(mnist_dir, "test")


@pytest.fixture
def tiny_mnist(tmp_path):
    """A ten-image MNIST test split in IDX form, for tests about arguments rather than data, so
    they run where the real MNIST is not."""
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    for name, magic, array in (
        ("t10k-images-idx3-ubyte", mnist.IMAGES_MAGIC, images),
        ("t10k-labels-idx1-ubyte", mnist.LABELS_MAGIC, labels),
    ):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (tmp_path / name).write_bytes(header + array.tobytes())
    return tmp_path


@pytest.fixture(scope="module")
def board():
    """A simulated PYNQ-Z2, one per test module (skips without pynq or the C simulation)."""
    from simboard_fixtures import make_board

    return make_board("pynq-z2")


@pytest.fixture(scope="module")
def chunked_ol(board):
    """The driver on `board` with DMA chunks of 16 images, so that short batches span several;
    closed at the end of the module."""
    from simboard_fixtures import make_overlay

    overlay = make_overlay(board, chunk_images=16)
    yield overlay
    overlay.close()
