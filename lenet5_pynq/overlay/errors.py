"""The exceptions of the overlay driver."""

from __future__ import annotations


class AcceleratorError(RuntimeError):
    """A transfer or a run of the accelerator failed.  The driver has reset the DMA and the
    accelerator before raising, so the next call works (unless `recovered` is False)."""

    def __init__(self, message, channel=None, status=None, bytes_moved=None, bytes_expected=None):
        super().__init__(message)
        self.channel = channel
        self.status = status
        self.bytes_moved = bytes_moved
        self.bytes_expected = bytes_expected
        self.recovered = False


class DmaTimeout(AcceleratorError, TimeoutError):
    """A channel did not complete within the deadline (a stalled stream or accelerator)."""


class DmaError(AcceleratorError):
    """A channel stopped with an error bit set in its DMASR."""


class ShortTransfer(AcceleratorError):
    """The accelerator ended its output stream (TLAST) before the expected number of bytes."""


class WeightLoadError(AcceleratorError):
    """The accelerator rejected a weight set or acknowledged it with the wrong count or checksum."""


class WeightFormatError(ValueError):
    """A weight set does not fit the shapes or the fixed-point formats built into the fabric."""


class OverlayNotFound(FileNotFoundError):
    """No bitstream for this board in the package (it is built with overlay/, see its README)."""


class OverlayClosed(RuntimeError):
    """A call on an overlay driver after its `close()` (its DMA buffers are freed)."""
