"""The overlay driver (lenet5_pynq.overlay) end to end against the simulated board: bit-exact
classification at every batch size and chunking, timeouts and recovery, DMA errors, short
output, weight loading, and the checks on the overlay's metadata."""

from __future__ import annotations

import time

import numpy as np
import pytest
from simboard_fixtures import assert_exact, make_board, make_overlay, sample_images

from lenet5_pynq import board_design, export, hls_stream, weights
from lenet5_pynq import overlay as drv


@pytest.fixture(scope="module")
def ol(chunked_ol):
    return chunked_ol


@pytest.fixture
def quick_timeout(ol):
    saved = ol.timeout_s, ol.timeout_per_image_s
    ol.timeout_s, ol.timeout_per_image_s = 0.2, 0.0
    yield 0.2
    ol.timeout_s, ol.timeout_per_image_s = saved


# ---------------------------------------------------------------------------- classify
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 33, 50])
def test_classify_bit_exact_across_chunks(ol, n):
    images = sample_images(n, seed=n)
    pred = ol.classify(images)
    assert pred.classes.dtype == np.int64 and pred.logits.dtype == np.int16
    assert pred.logits.shape == (n, 10)
    assert_exact(pred, images)
    t = ol.last_timing
    assert t.images == n and t.chunks == -(-n // 16)
    assert 0 < t.fabric_s <= t.total_s


def test_classify_mnist_slice(ol, mnist_test):
    images = mnist_test[0][:200]
    pred = ol.classify(images)
    assert_exact(pred, images)
    assert (pred.classes == mnist_test[1][:200]).mean() > 0.97


def test_single_image_and_empty_batch(ol):
    image = sample_images(1)[0]
    pred = ol.classify(image)
    assert pred.classes.shape == (1,) and type(pred.classes) is np.ndarray
    assert_exact(pred, image[None])
    empty = ol.classify(np.zeros((0, 28, 28), np.uint8))
    assert empty.classes.shape == (0,) and empty.logits.shape == (0, 10)


def test_bad_images_are_refused_before_the_hardware(ol):
    with pytest.raises(TypeError):
        ol.classify(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError):
        ol.classify(np.zeros((2, 32, 32), np.uint8))


def test_batch_one_path_allocates_nothing(ol, board):
    ol.classify(sample_images(1))
    before = board.memory._bo
    for _ in range(5):
        ol.classify(sample_images(1))
    assert board.memory._bo == before


def test_throughput_test_reports(ol):
    r = ol.throughput_test(batch_size=40, repeats=1)
    assert r["batch_size"] == 40 and r["chunks"] == 3
    assert r["throughput_images_per_s"] > 0 and r["fabric_ms"] <= r["runtime_ms"]
    assert r["fclk_mhz"] == board_design.FABRIC_CLOCK_MHZ


# ----------------------------------------------------------------- timeouts and faults
def test_stalled_accelerator_times_out_then_recovers(ol, board, quick_timeout):
    images = sample_images(8, seed=11)
    board.faults.stall = True
    start = time.monotonic()
    with pytest.raises(drv.DmaTimeout) as info:
        ol.classify(images)
    elapsed = time.monotonic() - start
    e = info.value
    assert elapsed < quick_timeout + 0.5, f"the timeout took {elapsed:.2f} s"
    assert elapsed >= quick_timeout
    assert e.channel == "S2MM" and e.bytes_moved == 0 and e.bytes_expected == 8 * drv.RESULT_BYTES
    assert "S2MM did not complete" in str(e) and "0 of 192 bytes" in str(e)
    assert e.recovered
    assert_exact(ol.classify(images), images)  # the same object works again
    assert_exact(ol.classify(images[:1]), images[:1])


def test_stall_at_batch_one(ol, board, quick_timeout):
    board.faults.stall = True
    with pytest.raises(drv.DmaTimeout, match="S2MM"):
        ol.classify(sample_images(1))
    assert_exact(ol.classify(sample_images(1)), sample_images(1))


def test_stall_in_a_later_chunk(ol, board, quick_timeout):
    images = sample_images(40, seed=5)
    ol.classify(images[:1])
    calls = {"n": 0}
    accel = board.pl.accel
    original = accel.step

    def step():  # stall the second run of the batch (the second chunk)
        if accel.state == "idle" and accel.start:
            calls["n"] += 1
            if calls["n"] == 2:
                board.faults.stall = True
        return original()

    accel.step = step
    try:
        with pytest.raises(drv.DmaTimeout):
            ol.classify(images)
    finally:
        del accel.step
    assert_exact(ol.classify(images), images)


@pytest.mark.parametrize(
    "channel,bit,name", [("S2MM", drv.DMASR_DMASLVERR, "DMASlvErr"), ("MM2S", drv.DMASR_DMADECERR, "DMADecErr")]
)
def test_dma_error_bit_is_reported_and_cleared(ol, board, quick_timeout, channel, bit, name):
    images = sample_images(20, seed=2)
    board.faults.dma_error[channel] = bit
    with pytest.raises(drv.DmaError) as info:
        ol.classify(images)
    assert info.value.channel == channel and name in str(info.value)
    assert info.value.status & bit and info.value.recovered
    assert_exact(ol.classify(images), images)


def test_short_output_names_the_bytes(ol, board):
    images = sample_images(6, seed=4)
    board.faults.short_output = 2
    with pytest.raises(drv.ShortTransfer) as info:
        ol.classify(images)
    e = info.value
    assert e.bytes_moved == 4 * drv.RESULT_BYTES and e.bytes_expected == 6 * drv.RESULT_BYTES
    assert "after 4 of 6 results" in str(e)
    assert_exact(ol.classify(images), images)


def test_failed_reset_is_reported(ol, board, quick_timeout, monkeypatch):
    """If even the reset cannot bring the accelerator back, the error says so."""
    board.faults.stall = True
    monkeypatch.setattr(board.pl, "on_dma_reset", lambda: None)  # the reset no longer reaches the IP
    with pytest.raises(drv.DmaTimeout) as info:
        ol.classify(sample_images(3))
    assert not info.value.recovered
    assert "did not return to idle" in str(info.value.__cause__)
    monkeypatch.undo()
    ol.reset()
    assert_exact(ol.classify(sample_images(3)), sample_images(3))


# --------------------------------------------------------------------------- weights
def test_load_weights_round_trip(ol, tmp_path):
    images = sample_images(20, seed=9)
    params, _ = weights.load()
    alt_layers, _ = export.load_set(alternate=True)
    ol.load_weights(export.alternate_params(params))
    assert_exact(ol.classify(images), images, alt_layers)
    assert_exact(ol.classify(images[:1]), images[:1], alt_layers)
    # back to the shipped set from its .npz
    ol.load_weights(weights.SHIPPED)
    assert_exact(ol.classify(images), images)
    # a weight-stream file from `python -m lenet5_pynq.export weight-stream --alternate`
    stream = tmp_path / "alt.bin"
    assert export.main(["weight-stream", "--alternate", "--out", str(stream)]) == 0
    ol.load_weights(stream)
    assert_exact(ol.classify(images), images, alt_layers)
    ol.load_weights(export.load_set()[0])  # quantized layers
    assert_exact(ol.classify(images), images)


def test_load_weights_refuses_wrong_shapes_formats_and_saturation(ol, tmp_path):
    params, _ = weights.load()
    bad = dict(params)
    bad["fc1/kernel"] = bad["fc1/kernel"][:, :10]
    with pytest.raises(drv.WeightFormatError, match="fc1/kernel"):
        ol.load_weights(bad)
    big = {k: v * 64 for k, v in params.items()}
    with pytest.raises(drv.WeightFormatError, match="saturate"):
        ol.load_weights(big)
    from lenet5_pynq import fixedspec
    from lenet5_pynq.fixedpoint import FixedFormat

    spec = fixedspec.load()
    conv1 = spec.layers["conv1"]
    other = fixedspec.FixedSpec(
        spec.input,
        {
            **spec.layers,
            "conv1": fixedspec.LayerFormats(
                FixedFormat(12, 1, True, conv1.kernel.rounding, conv1.kernel.saturation),
                conv1.bias,
                conv1.accum,
                conv1.output,
            ),
        },
    )
    with pytest.raises(drv.WeightFormatError, match="conv1 kernel"):
        ol.load_weights(params, spec=other)
    short = tmp_path / "short.bin"
    np.zeros(10, "<u8").tofile(short)
    with pytest.raises(drv.WeightFormatError, match="beats"):
        ol.load_weights(short)
    assert_exact(ol.classify(sample_images(3)), sample_images(3))  # nothing was sent


def test_rejected_weight_header_leaves_weights(ol, board, tmp_path):
    beats = hls_stream.pack_weight_stream(export.load_set(alternate=True)[0]).copy()
    beats[0] ^= np.uint64(1)  # corrupt the magic
    with pytest.raises(drv.WeightLoadError, match="rejected"):
        ol.runner.send_weights(beats, hls_stream.weight_word_count(), 0)
    assert_exact(ol.classify(sample_images(4)), sample_images(4))


# ------------------------------------------------------------------ metadata checks
def _dma_description(ol, **override):
    desc = dict(ol.ip_dict[board_design.DMA_NAME])
    desc["parameters"] = {**desc["parameters"], **{k: str(v) for k, v in override.items()}}
    return desc


def test_dma_configuration_comes_from_metadata(ol):
    dma = drv.AxiDma(_dma_description(ol))
    assert dma.length_width == 26 and dma.max_bytes == (1 << 26) - 1
    with pytest.raises(RuntimeError, match="scatter-gather"):
        drv.AxiDma(_dma_description(ol, c_include_sg=1))
    with pytest.raises(RuntimeError, match="32 bits"):
        drv.AxiDma(_dma_description(ol, c_m_axis_mm2s_tdata_width=32))
    with pytest.raises(ValueError, match="outside"):
        dma.mm2s.transfer(0x1000, dma.max_bytes + 1)


def test_short_length_register_splits_batches(ol, board):
    """With the 14-bit default length register a transfer holds 20 images: the driver splits."""
    dma = drv.AxiDma(_dma_description(ol, c_sg_length_width=14))
    runner = drv.StreamRunner(dma, ol.lenet5_core, board, chunk_images=4096)
    try:
        assert runner.chunk_images == (2**14 - 1) // drv.IMAGE_BYTES == 20
        images = sample_images(45, seed=8)
        classes, logits = runner.classify(images)
        from lenet5_pynq.backends.base import Prediction

        assert_exact(Prediction(classes, logits), images)
        assert runner.last_timing.chunks == 3
    finally:
        runner.close()
        ol.reset()


def test_wide_addresses_on_zynq_ultrascale():
    b = make_board("zcu104")
    assert b.board.dma_address_width == 64
    overlay = make_overlay(b)
    assert overlay.runner._in_addr[0] >= 1 << 32
    images = sample_images(5)
    assert_exact(overlay.classify(images), images)


def test_register_map_mismatch_is_refused(ol):
    desc = dict(ol.ip_dict[board_design.ACCEL_NAME])
    regs = {k: dict(v) for k, v in desc["registers"].items()}
    regs["n"]["address_offset"] = 0x20
    desc["registers"] = regs
    with pytest.raises(RuntimeError, match="other HLS sources"):
        drv.LeNet5Core(desc)


def test_default_bitfile_off_board(monkeypatch):
    monkeypatch.delenv("BOARD", raising=False)
    with pytest.raises(drv.OverlayNotFound):
        drv.default_bitfile()
    with pytest.raises(drv.OverlayNotFound, match="vivado/README.md"):
        drv.default_bitfile("zcu104")


def test_starved_accelerator_times_out(ol, quick_timeout):
    """No injected fault: the accelerator is told n=2 but receives one image, so it waits for
    input forever (the classic hang of pynq's DMA.wait()); the driver times out and resets."""
    runner = ol.runner
    runner._stage(0, sample_images(1).reshape(1, -1))
    runner.dma.s2mm.transfer(runner._out_addr[0], 2 * drv.RESULT_BYTES)
    runner.dma.mm2s.transfer(runner._in_addr[0], drv.IMAGE_BYTES)
    runner.core.configure(2, hls_stream.MODE_CLASSIFY)
    runner.core.start()
    start = time.monotonic()
    with pytest.raises(drv.DmaTimeout) as info:
        try:
            runner._wait_s2mm(0, 2, time.monotonic() + quick_timeout)
        except drv.DmaTimeout as e:
            runner._fail(e)
    assert time.monotonic() - start < quick_timeout + 0.5
    assert "MM2S completed" in str(info.value) and info.value.recovered
    assert_exact(ol.classify(sample_images(3)), sample_images(3))
