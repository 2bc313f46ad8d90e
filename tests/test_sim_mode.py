"""The simulated board decodes the accelerator's `mode` register as the HLS top does
(hls_src/lenet5.cpp: `if (mode == kModeLoadWeights) load_weights(...); else if (n != 0)
classify(...);`): 1 loads weights, every other value of the 32-bit register classifies."""

from __future__ import annotations

import numpy as np
import pytest
from simboard_fixtures import assert_exact, make_overlay, sample_images

from lenet5_pynq import hls_stream, regmap
from lenet5_pynq import overlay as drv
from lenet5_pynq.backends.base import Prediction

# modes other than MODE_LOAD_WEIGHTS (1): the documented classify mode, undocumented small
# values, the top bit, all ones, and a value whose low byte is 1 (the top compares all 32 bits)
CLASSIFYING_MODES = [hls_stream.MODE_CLASSIFY, 2, 3, 7, 0x8000_0000, 0xFFFF_FFFF, 0x101]


@pytest.fixture(scope="module")
def ol(board):
    return make_overlay(board)


def wait_idle(channel, what: str) -> None:
    """pynq's wait() spins for ever; the simulated fabric moves on every register access, so a
    bounded number of status reads is plenty."""
    for _ in range(1000):
        if channel.idle or channel.error:
            assert not channel.error, f"{what}: DMA error"
            channel.wait()  # returns at once now; it records the bytes moved (`transferred`)
            return
    raise AssertionError(f"{what}: the transfer never completed (the accelerator took no data or produced none)")


def run_batch(ol, board, mode: int, images: np.ndarray) -> tuple[np.ndarray, int]:
    """One batch through pynq's own DMA driver with `mode` written to the accelerator; returns
    the output beats and the bytes S2MM received."""
    from pynq import allocate

    n = len(images)
    dma, core = ol.axi_dma, ol.lenet5_core
    src = allocate((n, drv.IMAGE_BYTES), np.uint8, target=board)
    dst = allocate((n * drv.RESULT_BYTES // 8,), np.uint64, target=board)
    src[:] = images.reshape(n, -1)
    # after the lenet5 driver's reset the channels run but are not yet idle: pynq's start() marks
    # the next transfer as the first
    dma.sendchannel.start()
    dma.recvchannel.start()
    core.write(regmap.REGISTERS["N"], n)
    core.write(regmap.REGISTERS["MODE"], mode)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    core.write(regmap.REGISTERS["CTRL"], drv.AP_START)
    wait_idle(dma.sendchannel, f"MM2S, mode 0x{mode:x}")
    wait_idle(dma.recvchannel, f"S2MM, mode 0x{mode:x}")
    return np.array(dst), dma.recvchannel.transferred


@pytest.mark.parametrize("mode", CLASSIFYING_MODES, ids=hex)
def test_every_mode_but_load_weights_classifies(ol, board, mode):
    images = sample_images(3, seed=mode & 0xFF)
    try:
        beats, received = run_batch(ol, board, mode, images)
        assert received == 3 * drv.RESULT_BYTES
        assert_exact(Prediction(*hls_stream.unpack_results(beats)), images)
    finally:
        ol.reset()  # the driver's cached register values are stale now


@pytest.mark.parametrize("mode", [2, 0xFFFF_FFFF], ids=hex)
def test_board_and_hls_top_agree_on_an_undocumented_mode(ol, board, mode):
    """The same beats, mode and n through the C-simulation library's top directly give the same
    output beats and TLAST flags as the simulated board."""
    from lenet5_pynq import csim_library as csim
    from lenet5_pynq.simboard import datapath

    images = sample_images(2, seed=11)
    try:
        beats, _ = run_batch(ol, board, mode, images)
    finally:
        ol.reset()
    with csim.session(datapath.shipped_stream()) as run_top:  # the board's power-on set
        top, last = run_top(
            mode, len(images), hls_stream.pack_images(images), len(images) * hls_stream.OUT_BEATS_PER_IMAGE
        )
    assert np.array_equal(top, beats)
    assert last.tolist() == [0] * (len(top) - 1) + [1]


@pytest.mark.parametrize("mode", [hls_stream.MODE_CLASSIFY, 5], ids=hex)
def test_no_images_means_no_run_of_the_datapath(ol, board, mode):
    """n == 0 in a classifying mode: the top reads and writes nothing and reports done."""
    core = ol.lenet5_core
    accel = board._pl().accel
    runs = accel.runs
    try:
        core.write(regmap.REGISTERS["N"], 0)
        core.write(regmap.REGISTERS["MODE"], mode)
        core.write(regmap.REGISTERS["CTRL"], drv.AP_START)
        ctrl = core.read(regmap.REGISTERS["CTRL"])
        assert ctrl & drv.AP_DONE and ctrl & drv.AP_IDLE
        assert accel.runs == runs + 1 and len(accel.out) == 0
    finally:
        ol.reset()
    assert_exact(ol.classify(sample_images(1)), sample_images(1))


def test_mode_one_still_loads_weights(ol, board):
    """Mode 1 takes a weight-load stream and answers with one ack beat, as before."""
    from pynq import allocate

    from lenet5_pynq import export

    stream = hls_stream.pack_weight_stream(export.load_set()[0])
    dma, core = ol.axi_dma, ol.lenet5_core
    src = allocate((len(stream),), np.uint64, target=board)
    dst = allocate((1,), np.uint64, target=board)
    src[:] = stream
    dma.sendchannel.start()
    dma.recvchannel.start()
    try:
        core.write(regmap.REGISTERS["N"], 0)
        core.write(regmap.REGISTERS["MODE"], hls_stream.MODE_LOAD_WEIGHTS)
        dma.recvchannel.transfer(dst)
        dma.sendchannel.transfer(src)
        core.write(regmap.REGISTERS["CTRL"], drv.AP_START)
        wait_idle(dma.sendchannel, "MM2S, mode 1")
        wait_idle(dma.recvchannel, "S2MM, mode 1")
        ack = hls_stream.parse_ack(int(np.array(dst)[0]))
        assert int(ack["status"]) == hls_stream.ACK_OK
    finally:
        ol.reset()
    assert_exact(ol.classify(sample_images(2)), sample_images(2))
