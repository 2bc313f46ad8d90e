"""The cpu-float C kernel (issue 14): register-blocked, fused multiply-adds where the processor
has them, a thread count per call.  Its agreement is stated against a float64 reference
(tests/float_reference.py) and the numpy float model's classes, not as bits."""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest
from float_reference import RTOL, float64_logits, outside_tolerance, worst_relative_error

from lenet5_pynq import native, weights
from lenet5_pynq.backends.cpu import FloatBackend


@pytest.fixture(scope="module")
def params():
    return weights.load()[0]


@pytest.fixture(scope="module")
def c_backend(params):
    return FloatBackend(params=params, engine="c", threads=1)


def test_agrees_with_float64_and_numpy_classes_on_all_test_images(c_backend, params, mnist_test):
    images = mnist_test[0]
    logits = c_backend.logits(images)
    reference = float64_logits(params, images)
    assert outside_tolerance(logits, reference) == 0, worst_relative_error(logits, reference)
    numpy_classes = FloatBackend(params=params, engine="numpy").predict(images).classes
    assert np.array_equal(logits.argmax(axis=1), numpy_classes)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 9, 33])
def test_every_batch_size_and_block_remainder(c_backend, params, count):
    """Images run in blocks of several for the dense layers; a partial block takes another path."""
    images = np.random.default_rng(count).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    logits = c_backend.logits(images)
    assert logits.shape == (count, 10)
    if count:
        assert worst_relative_error(logits, float64_logits(params, images)) <= RTOL
        # an image's logits do not depend on its neighbours or its place in a block
        single = np.concatenate([c_backend.logits(images[i : i + 1]) for i in range(count)])
        assert worst_relative_error(single, float64_logits(params, images)) <= RTOL


def test_threads_give_the_same_logits(params, mnist_test):
    """The arithmetic of an image does not depend on the thread that runs it: bits equal."""
    images = mnist_test[0][:203]
    one = FloatBackend(params=params, engine="c", threads=1).logits(images)
    for threads in (2, 3, 8):
        assert np.array_equal(FloatBackend(params=params, engine="c", threads=threads).logits(images), one)
    assert np.array_equal(FloatBackend(params=params, engine="c").logits(images), one)  # OpenMP's default


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be a whole number of at least 1"):
        FloatBackend(threads=bad)


def test_kernel_refuses_a_negative_thread_count(c_backend):
    lib, ffi = c_backend._lib, c_backend._ffi
    images = np.zeros((1, 28, 28), np.uint8)
    out = np.empty((1, 10), np.float32)
    status = lib.lenet5_float_forward(
        c_backend._packed_ptr, ffi.from_buffer("uint8_t[]", images), 1, ffi.from_buffer("float[]", out), -1
    )
    assert status == 2


def test_pack_refuses_a_wrong_buffer_size(c_backend, params):
    from lenet5_pynq.backends.cpu import _pack_for_c

    lib, ffi = c_backend._lib, c_backend._ffi
    arrays = _pack_for_c(params)
    pointers = ffi.new("float *[]", [ffi.from_buffer("float[]", a) for a in arrays])
    small = np.empty(lib.lenet5_float_packed_size() - 1, np.float32)
    assert lib.lenet5_float_pack(pointers, ffi.from_buffer("float[]", small), len(small)) == 1


def test_concurrent_calls_from_python_threads(params, mnist_test):
    backend = FloatBackend(params=params, engine="c", threads=2)
    images = mnist_test[0][:64]
    want = backend.logits(images)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(np.array_equal(backend.logits(images), want))
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors and len(results) == 20 and all(results)


def test_fused_multiply_adds_on_this_machine(c_backend):
    """The built kernel's multiply-adds are FMA instructions where the processor has them."""
    import shutil

    if native.target_arch() != "x86_64" or shutil.which("objdump") is None:
        pytest.skip("checks x86-64 code with objdump")
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    if "fma" not in flags:
        pytest.skip("this processor has no FMA")
    path = native.build("float_net.c", native.network_defines())
    code = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    register = "zmm" if "avx512f" in flags else "ymm"
    fused = [line for line in code.splitlines() if "vfmadd" in line and register in line]
    assert len(fused) > 500, len(fused)
    assert c_backend._lib.lenet5_float_lanes() == (16 if register == "zmm" else 8)


def test_fma_peak_is_measured():
    peak = native.fma_peak(seconds=0.05, runs=2)
    assert peak["gflops"] > 0.1 and peak["lanes"] >= 4 and "one core" in peak["measures"]
    with pytest.raises(ValueError, match="fma_peak needs"):
        native.fma_peak(seconds=0)


def test_only_the_float_sources_are_fused():
    """The exact kernels keep -ffp-contract=off; float_net.c and its peak loop are fused."""
    assert "-ffp-contract=fast" in native.candidate_flags("cc", "float_net.c")[0]
    assert "-ffp-contract=fast" in native.candidate_flags("cc", "fma_peak.c")[0]
    for source in ("fixed_net.c", None):
        assert all("-ffp-contract=off" in flags for flags in native.candidate_flags("cc", source))
