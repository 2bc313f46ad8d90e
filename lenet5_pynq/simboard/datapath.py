"""The accelerator's datapath on the simulated board: the HLS top compiled by g++, as the `csim`
backend loads it (hls_src/build/liblenet5_csim.so, or $LENET5_CSIM_LIB), driven through its
AXI4-Stream C API.

The library's weight memories are process-wide, shared with the `csim` backend: every run goes
through `csim.session` with the board's own weight set (the power-on weights or the last set the
board loaded), which the session reloads if anyone else changed the memories, so a simulated
board and a csim backend in one process never classify with each other's weights.
"""

from __future__ import annotations

import numpy as np

from .. import csim_library as csim
from .. import fixedspec, hls_config, hls_stream
from ..backends.base import BackendUnavailable

_shipped = None


def shipped_stream() -> np.ndarray:
    """The weight-load stream of the power-on (shipped) weights."""
    global _shipped
    if _shipped is None:
        layers, _ = fixedspec.load_quantized()
        _shipped = hls_stream.pack_weight_stream(layers)
    return _shipped


def check_library() -> str:
    """Load (building if needed) the library; returns its VLNV, which must be the IP's."""
    vlnv = csim.vlnv()
    if vlnv != hls_config.VLNV:
        raise BackendUnavailable(
            f"the C-simulation library is IP {vlnv}, the block design places {hls_config.VLNV}; rebuild it"
        )
    return vlnv


def run(weight_stream, mode: int, n: int, beats: np.ndarray, out_cap: int):
    """One run of the top with `weight_stream` (None: power-on weights) in the memories.

    Returns (out beats, TLAST flags, the weight stream now loaded)."""
    stream = weight_stream if weight_stream is not None else shipped_stream()
    with csim.session(stream) as run_top:
        out, last = run_top(mode, n, beats, out_cap)
    if mode == hls_stream.MODE_LOAD_WEIGHTS:
        if len(out) and int(hls_stream.parse_ack(int(out[0]))["status"]) == hls_stream.ACK_OK:
            return out, last.astype(bool), np.asarray(beats, np.uint64).copy()
        return out, last.astype(bool), stream
    return out, last.astype(bool), weight_stream
