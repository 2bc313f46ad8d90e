"""The overlay driver under misuse (issue 11, part 1): one overlay shared between threads gives
every caller its own bit-exact result; a closed overlay refuses calls; deadlines that would
switch the timeout off (NaN, infinity, zero, negative) are refused."""

from __future__ import annotations

import math
import threading

import pytest
from simboard_fixtures import assert_exact, make_overlay, sample_images

from lenet5_pynq import overlay as drv
from lenet5_pynq import weights


@pytest.fixture(scope="module")
def ol(chunked_ol):
    return chunked_ol


def _hammer(ol, threads, calls, sizes):
    batches = {n: sample_images(n, seed=100 + n) for n in sizes}
    errors, results = [], []
    start = threading.Barrier(threads)

    def work(k):
        start.wait()
        for i in range(calls):
            n = sizes[(k + i) % len(sizes)]
            try:
                results.append((n, ol.classify(batches[n])))
            except Exception as e:
                errors.append(repr(e))

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not any(t.is_alive() for t in pool), "a thread hung"
    assert not errors, f"{len(errors)} spurious errors, first: {errors[0]}"
    assert len(results) == threads * calls
    for n, pred in results:
        assert_exact(pred, batches[n])


def test_eight_threads_share_one_overlay_bit_exact(ol):
    _hammer(ol, threads=8, calls=6, sizes=[1, 3, 17, 40])


def test_threads_mix_classify_reset_and_weight_loads(ol):
    batch = sample_images(20, seed=5)
    errors = []

    def classify():
        for _ in range(5):
            try:
                assert_exact(ol.classify(batch), batch)
            except Exception as e:
                errors.append(repr(e))

    def other():
        for _ in range(3):
            try:
                ol.reset()
                ol.load_weights(weights.SHIPPED)
            except Exception as e:
                errors.append(repr(e))

    pool = [threading.Thread(target=classify) for _ in range(4)] + [threading.Thread(target=other) for _ in range(2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors[0]


def test_lock_is_documented_and_reentrant(ol):
    assert "thread" in drv.LeNet5Overlay.__doc__.lower() and "thread" in drv.StreamRunner.__doc__.lower()
    with ol.runner.lock:  # an RLock: the owner may call through
        assert_exact(ol.classify(sample_images(2)), sample_images(2))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 0, 0.0, -1, "soon", None])
def test_timeout_s_refuses_values_that_switch_the_deadline_off(ol, value):
    saved = ol.timeout_s
    with pytest.raises(ValueError, match="timeout_s"):
        ol.timeout_s = value
    assert ol.timeout_s == saved


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, "x"])
def test_timeout_per_image_s_is_checked(ol, value):
    saved = ol.timeout_per_image_s
    with pytest.raises(ValueError, match="timeout_per_image_s"):
        ol.timeout_per_image_s = value
    assert ol.timeout_per_image_s == saved
    ol.timeout_per_image_s = 0.0  # zero per image is allowed: timeout_s alone bounds the wait
    ol.timeout_per_image_s = saved


def test_nan_deadline_cannot_hang_a_stalled_accelerator(ol, board):
    with pytest.raises(ValueError):
        ol.timeout_s = float("nan")
    saved = ol.timeout_s, ol.timeout_per_image_s
    ol.timeout_s, ol.timeout_per_image_s = 0.2, 0.0
    board.faults.stall = True
    try:
        with pytest.raises(drv.DmaTimeout):
            ol.classify(sample_images(4))
    finally:
        board.faults.stall = False
        ol.timeout_s, ol.timeout_per_image_s = saved
    assert_exact(ol.classify(sample_images(4)), sample_images(4))


@pytest.mark.parametrize("kwargs", [{"timeout_s": math.nan}, {"timeout_s": 0}, {"timeout_per_image_s": -1e-3}])
def test_constructor_checks_deadlines(board, kwargs):
    with pytest.raises(ValueError, match="timeout"):
        make_overlay(board, **kwargs)


def test_closed_overlay_refuses_every_call(board):
    ol = make_overlay(board, chunk_images=8)
    images = sample_images(3)
    assert_exact(ol.classify(images), images)
    assert not ol.closed
    ol.close()
    assert ol.closed
    ol.close()  # twice is harmless
    for call in (
        lambda: ol.classify(images),
        lambda: ol.classify(images[:1]),
        ol.reset,
        lambda: ol.load_weights(weights.SHIPPED),
        lambda: ol.throughput_test(batch_size=4, repeats=1),
    ):
        with pytest.raises(drv.OverlayClosed, match="closed"):
            call()


def test_close_while_threads_classify_never_touches_freed_buffers(board):
    ol = make_overlay(board, chunk_images=8)
    batch = sample_images(24, seed=3)
    bad = []

    def work():
        for _ in range(10):
            try:
                assert_exact(ol.classify(batch), batch)
            except drv.OverlayClosed:
                return
            except Exception as e:
                bad.append(repr(e))

    pool = [threading.Thread(target=work) for _ in range(4)]
    for t in pool:
        t.start()
    ol.close()
    for t in pool:
        t.join(60)
    assert not bad, bad[0]
