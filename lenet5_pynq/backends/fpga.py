"""Backends on the overlay driver: `fpga`, the real board, and `sim`, the same driver over a
simulated board whose fabric is the HLS C simulation.  Both are bit-exact with the golden model.

`fpga` decides in microseconds whether it can run (a PYNQ board, pynq importable, the board's
overlay present), so `auto` falls through to the GPU or the CPU everywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import bitstreams
from .base import Backend, BackendUnavailable, Prediction, check_built_formats, check_images, weight_files

PYNQ_BOARD_FILE = str(bitstreams.PYNQ_BOARD_FILE)


def on_board() -> bool:
    """A PYNQ image: the device tree names the board (what pynq itself checks)."""
    return os.path.isfile(PYNQ_BOARD_FILE)


class _OverlayBackend(Backend):
    exact = True
    fallback_reason = ""  # why board_or_sim() chose the simulated board

    def _open(self, weights_path=None, spec_path=None, **overlay_kwargs):
        """Open the overlay; other weights than the power-on ones (`weight_files`: with the spec
        beside them unless `spec_path` is given) go in through the weight stream, and their spec
        must have the fabric's formats (SpecError otherwise, before the overlay is opened)."""
        from .. import fixedspec
        from ..overlay import LeNet5Overlay

        spec = None
        if weights_path is not None or spec_path is not None:
            weights_path, spec_path = weight_files(weights_path, spec_path)
            spec = fixedspec.load(spec_path, weights_path)  # made for these weights
            check_built_formats(spec, str(spec_path), "the fabric")
        self.overlay = LeNet5Overlay(**overlay_kwargs)
        self.logit_scale = self.overlay.logit_scale
        if spec is not None:
            try:
                self.load_weights(weights_path, spec)
            except BaseException:
                self.close()
                raise

    def predict(self, images) -> Prediction:
        return self.overlay.classify(check_images(images))

    def load_weights(self, source, spec=None, **kwargs) -> None:
        """Load another weight set into the fabric (see `LeNet5Overlay.load_weights`)."""
        self.overlay.load_weights(source, spec, **kwargs)

    @property
    def last_timing(self):
        return self.overlay.last_timing

    def close(self) -> None:
        overlay = getattr(self, "overlay", None)
        if overlay is not None:
            overlay.close()
            self.overlay = None


class FpgaBackend(_OverlayBackend):
    """The LeNet-5 overlay on this PYNQ board."""

    name = "fpga"

    def __init__(self, bitfile=None, board=None, weights_path=None, spec_path=None, **overlay_kwargs):
        if bitfile is None and not on_board():
            raise BackendUnavailable(f"not a PYNQ board ({PYNQ_BOARD_FILE} does not exist)")
        try:
            import pynq  # noqa: F401
        except ImportError as e:
            raise BackendUnavailable(f"pynq is not importable: {e}") from None
        from ..overlay import OverlayNotFound, default_bitfile

        try:
            path = Path(bitfile) if bitfile is not None else default_bitfile(board)
        except (OverlayNotFound, ValueError) as e:
            raise BackendUnavailable(str(e)) from None
        self._open(weights_path, spec_path, bitfile=path, **overlay_kwargs)


class SimBackend(_OverlayBackend):
    """The overlay driver over a simulated board (`lenet5_pynq.simboard`)."""

    name = "sim"

    def __init__(self, board=None, weights_path=None, spec_path=None, **overlay_kwargs):
        try:
            import pynq  # noqa: F401
        except ImportError as e:
            raise BackendUnavailable(f"pynq is not installed (pip install -e '.[board]'): {e}") from None
        from .. import board_design
        from ..simboard import SimBoard

        board = board or board_design.DEFAULT_BOARD
        self.board = SimBoard(board)
        self.device = f"simulated {board} (HLS C simulation as the fabric)"
        self._open(weights_path, spec_path, bitfile=self.board.bitfile, device=self.board, **overlay_kwargs)


def board_or_sim(**overlay_kwargs) -> _OverlayBackend:
    """The `fpga` backend on a PYNQ board with the overlay, else the `sim` backend (the same
    driver over a simulated board): what the notebooks run on, on the board and in CI."""
    try:
        return FpgaBackend(**overlay_kwargs)
    except BackendUnavailable as e:
        backend = SimBackend(**overlay_kwargs)
        backend.fallback_reason = str(e)
        return backend
