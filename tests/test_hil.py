"""Hardware in the loop: the overlay on a PYNQ board (``pytest -m hil``, on the board).

Loads this board's lenet5.bit, classifies the 10,000 MNIST test images, checks every logit bit
against the golden model, and prints the latency of one image from Python (median and p95 over
many calls) and the throughput of large batches.  Off a board every test skips with the reason.

Goals on a PYNQ-Z2: <= 200 us per image at batch 1 from Python, >= 50,000 images/s streamed.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from lenet5_pynq import fixedspec, golden
from lenet5_pynq.backends.fpga import PYNQ_BOARD_FILE, on_board

pytestmark = [
    pytest.mark.hil,
    pytest.mark.skipif(not on_board(), reason=f"needs a PYNQ board ({PYNQ_BOARD_FILE} does not exist)"),
]

BATCH1_CALLS = int(os.environ.get("LENET5_HIL_CALLS", "2000"))
LATENCY_GOAL_US = 200
THROUGHPUT_GOAL = 50_000


@pytest.fixture(scope="module")
def overlay():
    pytest.importorskip("pynq")
    from lenet5_pynq.overlay import LeNet5Overlay, OverlayNotFound

    try:
        ol = LeNet5Overlay()
    except OverlayNotFound as e:
        pytest.skip(str(e))
    yield ol
    ol.close()


def test_all_test_images_bit_exact(overlay, mnist_test):
    images, labels = mnist_test
    pred = overlay.classify(images)
    layers, _ = fixedspec.load_quantized()
    classes, logits = golden.predict_raw(images, layers)
    same = np.all(pred.logits == logits, axis=1) & (pred.classes == classes)
    print(
        f"\nfpga: {int(same.sum())} of {len(images)} identical to the golden model; "
        f"accuracy {np.mean(pred.classes == labels):.2%}; {overlay.last_timing.total_s * 1e3:.1f} ms "
        f"({overlay.last_timing.fabric_s * 1e3:.1f} ms in the fabric)"
    )
    assert int(same.sum()) == len(images)


def test_batch_one_latency(overlay, mnist_test):
    images = mnist_test[0]
    for i in range(50):  # warm-up
        overlay.classify(images[i])
    times, fabric = [], []
    for i in range(BATCH1_CALLS):
        image = images[i % len(images)]
        start = time.perf_counter()
        overlay.classify(image)
        times.append(time.perf_counter() - start)
        fabric.append(overlay.last_timing.fabric_s)
    us = np.array(times) * 1e6
    median, p95 = np.median(us), np.percentile(us, 95)
    print(
        f"\nbatch 1 from Python over {BATCH1_CALLS} calls: median {median:.0f} us, p95 {p95:.0f} us "
        f"(fabric median {np.median(fabric) * 1e6:.0f} us); goal <= {LATENCY_GOAL_US} us"
    )
    if median > LATENCY_GOAL_US:
        pytest.xfail(f"median {median:.0f} us is above the {LATENCY_GOAL_US} us goal")


@pytest.mark.parametrize("batch", [1000, 10000, 100000])
def test_streamed_throughput(overlay, mnist_test, batch):
    report = overlay.throughput_test(images=np.resize(mnist_test[0], (batch, 28, 28)), repeats=3)
    print(
        f"\nbatch {batch}: {report['throughput_images_per_s']:,.0f} images/s end to end, "
        f"{report['fabric_images_per_s']:,.0f} images/s in the fabric ({report['chunks']} transfers)"
    )
    if batch >= 10000 and report["throughput_images_per_s"] < THROUGHPUT_GOAL:
        pytest.xfail(f"{report['throughput_images_per_s']:,.0f} images/s is below the {THROUGHPUT_GOAL:,} goal")


def test_stall_recovery_on_the_board(overlay, mnist_test):
    """A transfer the accelerator cannot finish (n larger than the images sent) times out, is
    reset, and the next call works."""
    from lenet5_pynq import hls_stream
    from lenet5_pynq.overlay import DmaTimeout

    runner = overlay.runner
    saved = overlay.timeout_s, overlay.timeout_per_image_s
    overlay.timeout_s, overlay.timeout_per_image_s = 0.2, 0.0
    try:
        runner._stage(0, mnist_test[0][:1].reshape(1, -1))
        runner.dma.s2mm.transfer(runner._out_addr[0], 2 * hls_stream.RESULT_DTYPE.itemsize)
        runner.dma.mm2s.transfer(runner._in_addr[0], hls_stream.IN_BEATS_PER_IMAGE * hls_stream.BEAT_BYTES)
        runner.core.configure(2, hls_stream.MODE_CLASSIFY)  # waits forever for a second image
        runner.core.start()
        with pytest.raises(DmaTimeout):
            try:
                runner._wait_s2mm(0, 2, time.monotonic() + 0.2)
            except DmaTimeout as e:
                runner._fail(e)
    finally:
        overlay.timeout_s, overlay.timeout_per_image_s = saved
    images = mnist_test[0][:100]
    layers, _ = fixedspec.load_quantized()
    classes, logits = golden.predict_raw(images, layers)
    pred = overlay.classify(images)
    assert np.array_equal(pred.logits, logits) and np.array_equal(pred.classes, classes)
