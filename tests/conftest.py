import pytest

from lenet5_pynq import mnist


@pytest.fixture(scope="session")
def mnist_dir():
    directory = mnist.default_dir()
    if directory is None or not directory.is_dir():
        pytest.skip(f"no MNIST directory ({directory}): set $LENET5_MNIST or put ../shared/mnist beside the checkout")
    return directory


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    return mnist.load(mnist_dir, "test")
