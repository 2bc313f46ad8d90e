"""LeNet-5 on MNIST for PYNQ: the FPGA overlay, its golden model and its CPU and GPU peers."""

from .backends import BackendUnavailable, Prediction, load_backend

__version__ = "0.1.0"
__all__ = ["BackendUnavailable", "Prediction", "__version__", "load_backend"]
