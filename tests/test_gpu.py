"""The CUDA library and its PyTorch peers.

Without a GPU (CI): the generated shapes header is fresh, the CFFI declarations match the C
header, the library builds with nvcc (when nvcc is there), the fixed-point cast of the CUDA code
matches fixedpoint.cast (compiled for the host with g++), and the backends raise
BackendUnavailable with a clear message.  With a GPU (`pytest -m gpu`): every kernel variant in
both modes against the CPU references on all 10,000 MNIST test images and on random images.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from lenet5_pynq import fixedspec, golden, gpu, network, weights
from lenet5_pynq.backends import BackendUnavailable, load_backend
from lenet5_pynq.backends.cpu import FloatBackend
from lenet5_pynq.fixedpoint import ROUNDING_MODES, SATURATION_MODES, FixedFormat, cast
from lenet5_pynq.gpu import __main__ as gpu_command

ROOT = Path(__file__).resolve().parents[1]
KERAS_LOGITS = Path(os.environ.get("LENET5_KERAS_LOGITS", ROOT / ".gpu_data" / "keras_logits.npz"))
VARIANTS = ("warp", "block", "warp-small", "tensor")
# The half mode against float32: measured on an H200 (10,000 MNIST test images): classes agree on
# all 10,000, largest logit difference 1.6e-3 of the image's largest logit.  The limits leave room.
HALF_REL = 5e-3
HALF_MIN_AGREEMENT = 9_990


def _driver_reason() -> str | None:
    """Why the NVIDIA driver cannot run a kernel here, or None: asked of the driver itself
    (libcuda.so.1), so the answer does not depend on whether our library was built."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA GPU driver on this machine (libcuda.so.1 cannot be loaded)"
    status = cuda.cuInit(0)
    if status != 0:
        name = ctypes.c_char_p()
        cuda.cuGetErrorName(status, ctypes.byref(name))
        return f"the NVIDIA driver finds no usable GPU (cuInit: {(name.value or b'error').decode()} {status})"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver is installed but finds no GPU"
    return None


def _gpu_reason() -> str | None:
    """Why the GPU tests cannot run here (no driver, no GPU, then no library), or None."""
    reason = _driver_reason()
    if reason:
        return reason
    try:
        gpu.device_count()
    except gpu.GpuLibraryMissing as e:
        return str(e)
    except gpu.GpuError as e:
        return f"no usable GPU: {e}"
    return None


@pytest.fixture(scope="module")
def need_gpu():
    reason = _gpu_reason()
    if reason:
        pytest.skip(reason)


# ------------------------------------------------------------------------ no GPU needed


def test_shapes_header_is_fresh():
    assert gpu.write_shapes_header(check=True), (
        "cuda/generated/lenet5_shapes.h is stale: python -m lenet5_pynq.gpu header"
    )


def test_cdef_matches_header():
    assert gpu.check_header() == []


def test_check_header_says_what_it_did_not_check(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(gpu.ENV_LIB, str(tmp_path / "missing.so"))
    assert gpu_command.main(["check-header"]) == 0
    out = capsys.readouterr().out
    assert f"the library's exports not checked ({tmp_path / 'missing.so'} is not built)" in out
    assert "the library exports them" not in out


@pytest.fixture(scope="module")
def built_library(tmp_path_factory):
    """The library built by nvcc for every architecture, here, once per module (no GPU needed)."""
    if gpu.nvcc_path() is None:
        pytest.skip("nvcc not found")
    return gpu.build(tmp_path_factory.mktemp("gpu_build"), verbose=False, regenerate=False)


def test_header_check_catches_what_cffi_would_not_take(tmp_path):
    text = gpu.HEADER.read_text()
    changed = tmp_path / "lenet5_gpu.h"
    changed.write_text(text.replace("/* END CDEF */", "#define LENET5_EXTRA 1\n/* END CDEF */", 1))
    assert "preprocessor lines inside the CDEF section" in gpu.check_header(changed, library=tmp_path / "none.so")[0]
    changed.write_text(text.replace("/* END CDEF */", "int lenet5_gpu_broken(int x;\n/* END CDEF */", 1))
    assert "cffi cannot parse" in gpu.check_header(changed, library=tmp_path / "none.so")[0]


@pytest.mark.slow  # the nvcc build for five architectures
def test_header_check_catches_a_function_the_library_lacks(tmp_path, built_library):
    text = gpu.HEADER.read_text()
    changed = tmp_path / "lenet5_gpu.h"
    assert gpu.check_header(library=built_library) == []
    changed.write_text(text.replace("/* END CDEF */", "int lenet5_gpu_not_implemented(void);\n/* END CDEF */", 1))
    problems = gpu.check_header(changed, library=built_library)
    assert problems and "declares lenet5_gpu_not_implemented, which" in problems[0]


@pytest.mark.slow  # the nvcc build for five architectures
def test_library_builds_with_nvcc(built_library):
    lib = built_library
    assert lib.is_file()
    # Loadable without a GPU: the network it was built for is readable.
    handle = ctypes.CDLL(str(lib))
    assert handle.lenet5_gpu_num_layers() == len(network.LAYERS)
    assert handle.lenet5_gpu_image_bytes() == network.INPUT_HEIGHT * network.INPUT_WIDTH * network.INPUT_CHANNELS


CAST_HARNESS = r"""
#include <cstdint>
#include "fixed_cast.cuh"
extern "C" void cast_all(const int64_t* raw, int64_t* out, int n, int shift, int width, int rounding, int saturation,
                         int flat) {
    lenet5::FixedCast c{shift, width, rounding, saturation, -(int64_t(1) << (width - 1)), (int64_t(1) << (width - 1)) - 1};
    const lenet5::FlatCast f = lenet5::make_flat_cast(c);
    for (int i = 0; i < n; ++i) out[i] = flat ? lenet5::flat_cast(raw[i], f) : lenet5::fixed_cast(raw[i], c);
}
"""


@pytest.mark.parametrize("flat", [False, True], ids=["fixed_cast", "flat_cast"])
def test_fixed_cast_matches_fixedpoint_on_host(tmp_path, flat):
    """The CUDA code's casts (the CUDA-core kernels' and the tensor kernel's branch-free one),
    compiled for the host, against fixedpoint.cast in every mode."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "cast.cpp"
    src.write_text(CAST_HARNESS)
    so = tmp_path / "cast.so"
    subprocess.run(
        [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{gpu.GPU_DIR / 'src'}", str(src), "-o", str(so)], check=True
    )
    lib = ctypes.CDLL(str(so))
    rng = np.random.default_rng()
    raw = np.concatenate(
        [rng.integers(-(1 << 40), 1 << 40, 4000), np.arange(-300, 300), rng.integers(-(1 << 20), 1 << 20, 2000)]
    )
    raw = np.ascontiguousarray(raw, np.int64)
    out = np.empty_like(raw)
    p = ctypes.POINTER(ctypes.c_int64)
    for r, rounding in enumerate(ROUNDING_MODES):
        for s, saturation in enumerate(SATURATION_MODES):
            for accum_frac, width, int_bits in ((25, 16, 3), (20, 12, 9), (4, 16, 14), (10, 8, 2), (3, 16, 12)):
                fmt = FixedFormat(width, int_bits, True, rounding, saturation)
                lib.cast_all(
                    raw.ctypes.data_as(p),
                    out.ctypes.data_as(p),
                    len(raw),
                    accum_frac - fmt.frac_bits,
                    width,
                    r,
                    s,
                    flat,
                )
                np.testing.assert_array_equal(
                    out, cast(raw, accum_frac, fmt), err_msg=f"{fmt.ctype()} from {accum_frac} fraction bits"
                )


def test_backends_unavailable_without_gpu():
    if _gpu_reason() is None:
        pytest.skip("a GPU is here")
    for name in ("gpu", "gpu-float", "gpu-fp16"):
        with pytest.raises(BackendUnavailable, match="GPU|driver|library|nvcc|build"):
            load_backend(name)


def test_backend_unavailable_without_library(monkeypatch, tmp_path):
    monkeypatch.setenv(gpu.ENV_LIB, str(tmp_path / "missing.so"))
    monkeypatch.setattr(gpu.library, "_LIB", None)
    with pytest.raises(BackendUnavailable, match="not built"):
        load_backend("gpu")


def test_torch_backends_unavailable_without_cuda():
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("PyTorch sees a GPU")
    except ImportError:
        pass
    for name in ("torch", "torch-fp16", "torch-compile"):
        with pytest.raises(BackendUnavailable, match="PyTorch"):
            load_backend(name)


# ------------------------------------------------------------------------ GPU


@pytest.fixture(scope="module")
def quantized():
    layers, spec = fixedspec.load_quantized()
    return layers, spec


@pytest.fixture(scope="module")
def params():
    return weights.load()[0]


@pytest.fixture(scope="module")
def net(need_gpu, params, quantized):
    n = gpu.GpuNetwork(params, quantized[0])
    yield n
    n.close()


@pytest.fixture(scope="module")
def golden_test(mnist_test, quantized):
    images = np.ascontiguousarray(mnist_test[0])
    return images, golden.predict_raw(images, quantized[0])


@pytest.fixture(scope="module")
def float_test(mnist_test, params):
    images = np.ascontiguousarray(mnist_test[0])
    logits = FloatBackend(params=params).logits(images)
    return images, logits


def _use_variant(net, variant):
    """Sets the variant; a card without tensor cores for the tensor variant skips the test."""
    net.set_variant(variant)
    if variant == "tensor":
        try:
            net.infer(np.zeros((1, 28, 28), np.uint8), "fixed")
        except gpu.GpuError as e:
            if e.status == 6:
                pytest.skip(str(e))
            raise


@pytest.fixture(scope="module")
def half_net(net):
    try:
        net.infer(np.zeros((0, 28, 28), np.uint8), "half")
    except gpu.GpuError as e:
        pytest.skip(f"no half mode on this card: {e}")
    return net


def _assert_float_close(logits, ref, rel=1e-4, min_class_agreement=None):
    assert np.all(np.isfinite(logits))
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-6)
    worst = float((np.abs(logits - ref) / scale).max())
    assert worst <= rel, f"largest logit difference {worst:.2e} of the image's largest logit (limit {rel})"
    if min_class_agreement is not None:
        agree = int((logits.argmax(1) == ref.argmax(1)).sum())
        assert agree >= min_class_agreement, f"classes agree on {agree} of {len(ref)}"


@pytest.mark.gpu
@pytest.mark.parametrize("variant", VARIANTS + ("auto",))
def test_fixed_bit_exact_on_mnist(net, golden_test, variant):
    images, (classes_ref, logits_ref) = golden_test
    _use_variant(net, variant)
    classes, logits = net.infer(images, "fixed")
    mismatched = int((logits != logits_ref).any(axis=1).sum())
    assert mismatched == 0, f"{mismatched} of {len(images)} images differ from the golden model in some logit bit"
    np.testing.assert_array_equal(classes, classes_ref)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", VARIANTS + ("auto",))
def test_float_matches_cpu_float_on_mnist(net, float_test, variant):
    images, ref = float_test
    _use_variant(net, variant)
    classes, logits = net.infer(images, "float")
    _assert_float_close(logits, ref, 1e-4, min_class_agreement=len(images) - 5)
    np.testing.assert_array_equal(classes, logits.argmax(1))


@pytest.mark.gpu
def test_half_agrees_with_float_on_mnist(half_net, float_test, mnist_test):
    images, ref = float_test
    half_net.set_variant("auto")
    classes, logits = half_net.infer(images, "half")
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(classes, logits.argmax(1))
    _assert_float_close(logits, ref, HALF_REL, min_class_agreement=HALF_MIN_AGREEMENT)
    labels = mnist_test[1]
    assert abs(float((classes == labels).mean()) - float((ref.argmax(1) == labels).mean())) <= 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 257, 70_001])
def test_half_random_images_any_batch(half_net, params, n):
    """Partial passes of 16 images; noise images (larger activations than digits) keep within
    twice the MNIST limit."""
    rng = np.random.default_rng()
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    pick = rng.choice(n, 2000, replace=False) if n > 2000 else np.arange(n)
    classes, logits = half_net.infer(images, "half")
    np.testing.assert_array_equal(classes, logits.argmax(1))
    _assert_float_close(logits[pick], FloatBackend(params=params).logits(images[pick]), 2 * HALF_REL)


@pytest.mark.gpu
def test_half_unaligned_and_device_path(half_net):
    """The same numbers from an unaligned host array (no cp.async staging) and through device
    memory with poisoned outputs."""
    rng = np.random.default_rng()
    n = 1001
    buf = rng.integers(0, 256, n * 784 + 1, dtype=np.uint8)
    aligned = np.ascontiguousarray(buf[1:].reshape(n, 28, 28))
    ref_classes, ref_logits = half_net.infer(aligned, "half")
    unaligned = buf[1:].reshape(n, 28, 28)
    assert unaligned.ctypes.data % 16
    classes, logits = half_net.infer(unaligned, "half")
    np.testing.assert_array_equal(logits, ref_logits)
    np.testing.assert_array_equal(classes, ref_classes)
    torch = pytest.importorskip("torch")
    dev = torch.from_numpy(buf).cuda()
    d_classes = torch.full((n,), -1, dtype=torch.int32, device="cuda")
    d_logits = torch.full((n, 10), float("nan"), dtype=torch.float32, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    half_net.infer_device(dev.data_ptr() + 1, n, "half", d_classes.data_ptr(), d_logits.data_ptr(), stream)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(d_logits.cpu().numpy(), ref_logits)
    np.testing.assert_array_equal(d_classes.cpu().numpy(), ref_classes)


@pytest.mark.gpu
def test_half_needs_float_weights(need_gpu, quantized):
    n = gpu.GpuNetwork(None, quantized[0])
    try:
        with pytest.raises(gpu.GpuError, match="float") as e:
            n.infer(np.zeros((2, 28, 28), np.uint8), "half")
        assert e.value.status == 7
        with pytest.raises(ValueError, match="'half'"):
            n.infer(np.zeros((2, 28, 28), np.uint8), "double")
    finally:
        n.close()


@pytest.fixture(scope="module")
def keras_test(mnist_test):
    """Logits Keras computed (.gpu_data/keras_logits.npz, made on a machine with tensorflow for
    the current weights), or Keras itself when tensorflow is here."""
    images = np.ascontiguousarray(mnist_test[0])
    sha = hashlib.sha256(weights.SHIPPED.read_bytes()).hexdigest()
    if KERAS_LOGITS.is_file():
        with np.load(KERAS_LOGITS) as f:
            if str(f["weights_sha256"]) == sha:
                return images, f["logits"]
    try:
        return images, keras_logits(images)
    except ImportError:
        pytest.skip(f"no tensorflow and no {KERAS_LOGITS} for the current weights")


@pytest.mark.gpu
def test_float_matches_keras(net, keras_test):
    images, ref = keras_test
    net.set_variant("auto")
    _, logits = net.infer(images, "float")
    _assert_float_close(logits, ref, 1e-4, min_class_agreement=9995)


@pytest.mark.gpu
def test_half_agrees_with_keras(half_net, keras_test):
    images, ref = keras_test
    _, logits = half_net.infer(images, "half")
    _assert_float_close(logits, ref, HALF_REL, min_class_agreement=HALF_MIN_AGREEMENT)


def keras_logits(images: np.ndarray) -> np.ndarray:
    """Keras's float32 logits for the shipped weights (needs tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorflow import keras

    from lenet5_pynq import keras_model

    model = keras_model.build_model(keras)
    keras_model.set_model_weights(model, weights.load()[0])
    return model.predict(images[..., None].astype(np.float32), batch_size=1000, verbose=0)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 2, 3, 31, 257, 1000, 70_001])
def test_random_images_any_batch(net, quantized, params, variant, n):
    """Fresh random images, batch sizes that leave partial groups and partial chunks."""
    rng = np.random.default_rng()
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    if n > 2000:  # the golden model on a sample keeps this quick
        pick = rng.choice(n, 2000, replace=False)
    else:
        pick = np.arange(n)
    _use_variant(net, variant)
    classes, logits = net.infer(images, "fixed")
    ref_classes, ref_logits = golden.predict_raw(images[pick], quantized[0])
    np.testing.assert_array_equal(logits[pick], ref_logits)
    np.testing.assert_array_equal(classes[pick], ref_classes)
    _fclasses, flogits = net.infer(images, "float")
    _assert_float_close(flogits[pick], FloatBackend(params=params).logits(images[pick]), 1e-4)


@pytest.mark.gpu
def test_unaligned_host_input_and_optional_outputs(net, quantized):
    rng = np.random.default_rng()
    buf = rng.integers(0, 256, 600 * 784 + 1, dtype=np.uint8)
    images = buf[1:].reshape(600, 28, 28)  # not 16-byte aligned
    assert images.ctypes.data % 16
    ref_classes, ref_logits = golden.predict_raw(images, quantized[0])
    for variant in VARIANTS:
        _use_variant(net, variant)
        classes = np.full(600, -7, np.int32)
        net.infer_into(images, "fixed", classes, None)
        np.testing.assert_array_equal(classes, ref_classes)
        logits = np.full((600, 10), 12345, np.int16)
        net.infer_into(images, "fixed", None, logits)
        np.testing.assert_array_equal(logits, ref_logits)


@pytest.mark.gpu
def test_device_path_writes_every_output(net, quantized):
    """Device memory in and out (through PyTorch's allocator), outputs poisoned first,
    unaligned input pointer too."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng()
    n = 5003
    host = rng.integers(0, 256, (n * 784 + 3), dtype=np.uint8)
    dev = torch.from_numpy(host).cuda()
    ref_classes, ref_logits = golden.predict_raw(host[3:].reshape(n, 28, 28), quantized[0])
    for variant in VARIANTS:
        _use_variant(net, variant)
        classes = torch.full((n,), -1, dtype=torch.int32, device="cuda")
        logits = torch.full((n, 10), -32768, dtype=torch.int16, device="cuda")
        net.infer_device(
            dev.data_ptr() + 3,
            n,
            "fixed",
            classes.data_ptr(),
            logits.data_ptr(),
            torch.cuda.current_stream().cuda_stream,
        )
        torch.cuda.synchronize()
        np.testing.assert_array_equal(logits.cpu().numpy(), ref_logits)
        np.testing.assert_array_equal(classes.cpu().numpy(), ref_classes)


def _variant_spec(spec: fixedspec.FixedSpec, rounding: str, saturation: str, int_bits_delta: int, width: int = 16):
    """The spec with every output format changed; accumulators follow (same width, the fraction
    bits the products have), so the result is a valid spec."""
    layers = {}
    in_frac = spec.input.frac_bits
    for layer in network.LAYERS:
        f = spec.layers[layer.name]
        out = dataclasses.replace(
            f.output, width=width, int_bits=f.output.int_bits + int_bits_delta, rounding=rounding, saturation=saturation
        )
        acc_frac = in_frac + f.kernel.frac_bits
        accum = dataclasses.replace(f.accum, int_bits=f.accum.width - acc_frac)
        layers[layer.name] = dataclasses.replace(f, output=out, accum=accum)
        in_frac = out.frac_bits
    new = dataclasses.replace(spec, layers=layers)
    new.validate("test spec")
    return new


@pytest.mark.gpu
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("saturation", SATURATION_MODES)
def test_every_cast_mode_bit_exact(need_gpu, params, quantized, mnist_test, rounding, saturation):
    """Outputs narrowed by two integer bits (so they overflow) and to 12 bits, in each mode."""
    spec = quantized[1]
    images = np.ascontiguousarray(mnist_test[0][:500])
    for delta, width in ((-2, 16), (0, 12)):
        q = fixedspec.quantize_params(params, _variant_spec(spec, rounding, saturation, delta, width))
        with_net = gpu.GpuNetwork(None, q)
        try:
            for variant in VARIANTS:
                _use_variant(with_net, variant)
                classes, logits = with_net.infer(images, "fixed")
                ref_classes, ref_logits = golden.predict_raw(images, q)
                np.testing.assert_array_equal(logits, ref_logits, err_msg=f"{variant} {delta} {width}")
                np.testing.assert_array_equal(classes, ref_classes)
        finally:
            with_net.close()


@pytest.mark.gpu
def test_mode_not_loaded_and_bad_arguments(need_gpu, params):
    n = gpu.GpuNetwork(params, None)
    try:
        with pytest.raises(gpu.GpuError, match="fixed-point") as e:
            n.infer(np.zeros((2, 28, 28), np.uint8), "fixed")
        assert e.value.status == 7
        with pytest.raises(ValueError):
            n.infer_into(np.zeros((2, 28, 28), np.uint8), "float", np.empty(2, np.int64), None)
        classes, logits = n.infer(np.zeros((0, 28, 28), np.uint8), "float")
        assert classes.shape == (0,) and logits.shape == (0, 10)
    finally:
        n.close()


@pytest.mark.gpu
def test_backends_through_registry(need_gpu, mnist_test, golden_test):
    images, (_ref_classes, ref_logits) = golden_test
    spec = fixedspec.load()
    with load_backend("gpu") as b:
        assert b.exact
        p = b.predict(images[0])  # one 28x28 image
        assert p.logits.dtype == np.int16 and p.logits.shape == (1, 10)
        assert p.logit_scale == spec.logits.scale
        np.testing.assert_array_equal(p.logits[0], ref_logits[0])
        assert p.classes.dtype == np.int64
    with load_backend("gpu-float") as b:
        p = b.predict(images[:10])
        assert p.logits.dtype == np.float32 and p.logit_scale == 1.0
    try:
        half = load_backend("gpu-fp16")
    except BackendUnavailable as e:
        assert "compute capability" in str(e)
    else:
        with half as b:
            p = b.predict(images[:10])
            assert p.logits.dtype == np.float32 and not b.exact
            np.testing.assert_array_equal(p.classes, p.logits.argmax(1))
    with load_backend("auto", verbose=False) as b:
        assert b.name in ("fpga", "gpu")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["torch", "torch-fp16", "torch-compile"])
def test_torch_peers_agree(need_gpu, name, float_test):
    pytest.importorskip("torch")
    images, ref = float_test
    images, ref = images[:2000], ref[:2000]
    with load_backend(name) as b:
        p = b.predict(images)
    if name == "torch":
        _assert_float_close(p.logits, ref, 1e-4, min_class_agreement=len(images) - 1)
    else:  # half precision
        _assert_float_close(p.logits, ref, 2e-2, min_class_agreement=int(0.995 * len(images)))


# ------------------------------------------------------------------------ resident path (GPU)


def _check_fixed(images, classes, logits, quantized_layers):
    ref_classes, ref_logits = golden.predict_raw(images, quantized_layers)
    np.testing.assert_array_equal(logits, ref_logits)
    np.testing.assert_array_equal(classes, ref_classes)


def _check_float(images, classes, logits, params):
    _assert_float_close(logits, FloatBackend(params=params).logits(images), 1e-4)
    np.testing.assert_array_equal(classes, logits.argmax(1))


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_resident_path_matches_references(net, quantized, params, n):
    """Host batches of 1..8 under AUTO go through the resident kernel: fixed bit-exact with the
    golden model, float within 1e-4 of cpu-float, for several calls in a row."""
    net.set_variant("auto")
    net.set_resident(1000)
    rng = np.random.default_rng()
    calls0 = net.resident_stats()[0]
    for _ in range(3):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        _check_fixed(images, *net.infer(images, "fixed"), quantized[0])
        _check_float(images, *net.infer(images, "float"), params)
    calls1 = net.resident_stats()[0]
    assert calls1 - calls0 == 6, "the calls did not go through the resident kernel"


@pytest.mark.gpu
def test_resident_path_mixed_calls(net, quantized, params, mnist_test):
    """Resident calls mixed with everything else on the handle (modes, batch sizes, the device
    path, timing, forced variants, a second handle, idle endings), each checked."""
    torch = pytest.importorskip("torch")
    net.set_variant("auto")
    net.set_resident(1000)
    rng = np.random.default_rng()
    mn = np.ascontiguousarray(mnist_test[0][:64])
    other = gpu.GpuNetwork(params, None)  # a second handle with its own resident kernel
    try:
        calls0, launches0, _ = net.resident_stats()
        steps = [("fixed", 1), ("float", 1), ("fixed", 7), ("fixed", 2), ("float", 9), ("fixed", 300), ("float", 8),
                 ("device", 5), ("fixed", 1), ("time", 1), ("float", 3), ("warp", 2), ("fixed", 1), ("other", 1),
                 ("float", 1), ("sleep", 1), ("fixed", 2), ("float", 1)]  # fmt: skip
        resident_calls = 0
        for what, n in steps:
            images = mn[:n] if n <= len(mn) else rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            if what in ("fixed", "float"):
                classes, logits = net.infer(images, what)
                if what == "fixed":
                    _check_fixed(images, classes, logits, quantized[0])
                else:
                    _check_float(images, classes, logits, params)
                resident_calls += n <= 8
            elif what == "device":
                dev = torch.from_numpy(images.copy()).cuda()
                classes = torch.full((n,), -1, dtype=torch.int32, device="cuda")
                logits = torch.full((n, 10), -32768, dtype=torch.int16, device="cuda")
                net.infer_device(dev.data_ptr(), n, "fixed", classes.data_ptr(), logits.data_ptr(), 0)
                torch.cuda.synchronize()
                _check_fixed(images, classes.cpu().numpy(), logits.cpu().numpy(), quantized[0])
            elif what == "time":
                assert net.time_device(images, 1, "float", 3, 1, 2).shape == (2,)
            elif what == "warp":  # a forced variant takes the launch path
                net.set_variant("warp")
                _check_fixed(images, *net.infer(images, "fixed"), quantized[0])
                net.set_variant("auto")
            elif what == "other":
                _check_float(images, *other.infer(images, "float"), params)
                _check_fixed(images, *net.infer(images, "fixed"), quantized[0])
                _check_float(images, *other.infer(images, "float"), params)
                resident_calls += 1
            elif what == "sleep":  # the kernel ends when idle; the next call starts another
                net.set_resident(300)
                _check_fixed(images, *net.infer(images, "fixed"), quantized[0])
                time.sleep(0.02)
                _check_fixed(images, *net.infer(images, "fixed"), quantized[0])
                resident_calls += 2
        calls1, launches1, gpu_us = net.resident_stats()
        assert calls1 - calls0 == resident_calls
        assert 1 <= launches1 - launches0 <= resident_calls
        assert 0 < gpu_us < 1000
        assert other.resident_stats()[0] == 2
    finally:
        other.close()
        net.set_resident(1000)


@pytest.mark.gpu
def test_resident_outputs_optional_unaligned_and_off(net, quantized):
    net.set_variant("auto")
    rng = np.random.default_rng()
    buf = rng.integers(0, 256, 3 * 784 + 5, dtype=np.uint8)
    images = buf[5:].reshape(3, 28, 28)  # not 16-byte aligned
    ref_classes, ref_logits = golden.predict_raw(images, quantized[0])
    for idle in (1000, 0):  # 0: a launch per call
        net.set_resident(idle)
        calls0 = net.resident_stats()[0]
        classes = np.full(3, -7, np.int32)
        net.infer_into(images, "fixed", classes, None)
        np.testing.assert_array_equal(classes, ref_classes)
        logits = np.full((3, 10), 12345, np.int16)
        net.infer_into(images, "fixed", None, logits)
        np.testing.assert_array_equal(logits, ref_logits)
        assert net.resident_stats()[0] - calls0 == (2 if idle else 0)
    net.set_resident(1000)
    with pytest.raises(gpu.GpuError, match="idle_us") as e:
        net.set_resident(-1)
    assert e.value.status == 1
    with pytest.raises(ValueError):
        net.infer_into(images[::2], "fixed", None, None)  # not contiguous
    with pytest.raises(ValueError):
        ro = np.empty(3, np.int32)
        ro.setflags(write=False)
        net.infer_into(images, "fixed", ro, None)


@pytest.mark.gpu
def test_infer_into_same_arrays_again(net, quantized, params):
    """infer_into keeps the pointers of the last small arrays: new contents, other modes, other
    arrays and wrong dtypes are still handled."""
    net.set_variant("auto")
    net.set_resident(1000)
    rng = np.random.default_rng()
    images = np.empty((2, 28, 28), np.uint8)
    classes = np.empty(2, np.int32)
    logits = np.empty((2, 10), np.int16)
    flogits = np.empty((2, 10), np.float32)
    for _ in range(4):
        images[...] = rng.integers(0, 256, images.shape)
        net.infer_into(images, "fixed", classes, logits)
        _check_fixed(images, classes, logits, quantized[0])
        net.infer_into(images, "float", classes, flogits)
        _check_float(images, classes, flogits, params)
    with pytest.raises(ValueError):
        net.infer_into(images, "float", classes, logits)  # int16 logits in float mode
    net.infer_into(images, "fixed", classes, logits)
    with pytest.raises(ValueError):
        net.infer_into(images, "fixed", classes, flogits)
    one = images[:1]
    net.infer_into(one, "fixed", classes[:1], logits[:1])
    _check_fixed(one, classes[:1], logits[:1], quantized[0])


# ------------------------------------------------------------------------ host pipeline, pinned arrays (GPU)


@pytest.fixture
def pipeline(net):
    """The module's network, its host pipeline back to the defaults after the test."""
    net.set_variant("auto")
    yield net
    net.set_host_pipeline(0, 0)


def _pinned_copy(net, images: np.ndarray) -> np.ndarray:
    out = net.pinned_array(images.shape, images.dtype)
    out[...] = images
    return out


def _poisoned_outputs(net, n: int, mode: str, memory: str):
    if memory == "pinned":
        classes, logits = net.empty_pinned_outputs(n, mode)
    else:
        classes, logits = np.empty(n, np.int32), np.empty((n, 10), net.logits_dtype(mode))
    classes[...] = -7
    logits[...] = 12345 if mode == "fixed" else np.nan
    return classes, logits


@pytest.mark.gpu
def test_pinned_arrays_shape_dtype_lifetime(need_gpu, quantized, golden_test):
    """empty_pinned's arrays: their shape and dtype, results bit-exact through them, memory held
    by every view and freed when the last goes, independent of the network's lifetime; a
    network whose pipeline threads ran closes cleanly."""
    images_ref, (classes_ref, logits_ref) = golden_test
    other = gpu.GpuNetwork(None, quantized[0])
    before = gpu.pinned_bytes()
    n = 4000
    images = other.empty_pinned(n)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert images.flags.c_contiguous and images.flags.writeable
    classes, logits = other.empty_pinned_outputs(n, "fixed")
    assert classes.shape == (n,) and classes.dtype == np.int32
    assert logits.shape == (n, 10) and logits.dtype == np.int16
    assert gpu.pinned_bytes() - before == n * (784 + 4 + 20)
    images[...] = images_ref[:n]
    other.set_host_pipeline(4, 1000)  # four chunks on four lanes: three threads of the handle
    other.infer_into(images, "fixed", classes, logits)
    np.testing.assert_array_equal(logits, logits_ref[:n])
    np.testing.assert_array_equal(classes, classes_ref[:n])
    view = images[10:20]
    other.close()  # the arrays outlive the network
    del images, classes, logits
    gc.collect()
    assert gpu.pinned_bytes() - before == n * 784  # the view holds its whole allocation
    np.testing.assert_array_equal(view, images_ref[10:20])
    del view
    gc.collect()
    assert gpu.pinned_bytes() == before


@pytest.mark.gpu
def test_pinned_arrays_are_page_locked_and_checked(net):
    torch = pytest.importorskip("torch")
    images = net.empty_pinned(5)
    assert torch.from_numpy(images).is_pinned()
    assert not torch.from_numpy(np.empty((5, 28, 28), np.uint8)).is_pinned()
    assert net.empty_pinned(0).shape == (0, 28, 28)
    assert net.pinned_array(7, np.float32).shape == (7,)
    with pytest.raises(ValueError, match="negative"):
        net.pinned_array((-1, 3), np.uint8)
    status = net.lib.lenet5_gpu_free_host(net.ffi.from_buffer(np.empty(4, np.uint8)))
    assert status == 1
    assert "not allocated by lenet5_gpu_alloc_host" in net.ffi.string(net.lib.lenet5_gpu_last_error()).decode()


@pytest.mark.gpu
@pytest.mark.parametrize("threads,chunk", [(1, 0), (3, 1000), (8, 4096)])
def test_pipeline_bit_exact_on_mnist(pipeline, golden_test, threads, chunk):
    """All 10,000 test images in fixed mode through several pipeline shapes, from pageable and
    from page-locked images into pageable and page-locked outputs, bit-exact."""
    net = pipeline
    images, (classes_ref, logits_ref) = golden_test
    net.set_host_pipeline(threads, chunk)
    used_threads, used_chunk = net.host_pipeline()
    assert used_threads == threads and used_chunk == (chunk or used_chunk) > 0
    pinned = _pinned_copy(net, images)
    for source in (images, pinned):
        for memory in ("pageable", "pinned"):
            classes, logits = _poisoned_outputs(net, len(images), "fixed", memory)
            net.infer_into(source, "fixed", classes, logits)
            mismatched = int((logits != logits_ref).any(axis=1).sum())
            assert mismatched == 0, f"{mismatched} images differ ({memory} outputs)"
            np.testing.assert_array_equal(classes, classes_ref)


@pytest.mark.gpu
def test_pipeline_float_matches_device_path(pipeline, float_test):
    """Float mode through the pipeline (chunks of 1000 on three lanes) against the same kernel on
    the device path over the whole batch.  Compared exactly: the same machine code on the same
    GPU computes each image on its own, and the even chunk offsets keep the warp variant's
    pairs of images the same; and within 1e-4 of cpu-float."""
    torch = pytest.importorskip("torch")
    net = pipeline
    images, ref = float_test
    n = len(images)
    net.set_variant("warp")
    dev = torch.from_numpy(images).cuda()
    classes_dev = torch.full((n,), -1, dtype=torch.int32, device="cuda")
    logits_dev = torch.full((n, 10), float("nan"), dtype=torch.float32, device="cuda")
    net.infer_device(dev.data_ptr(), n, "float", classes_dev.data_ptr(), logits_dev.data_ptr(), 0)
    torch.cuda.synchronize()
    net.set_host_pipeline(3, 1000)
    for source in (images, _pinned_copy(net, images)):
        for memory in ("pageable", "pinned"):
            classes, logits = _poisoned_outputs(net, n, "float", memory)
            net.infer_into(source, "float", classes, logits)
            np.testing.assert_array_equal(logits, logits_dev.cpu().numpy())
            np.testing.assert_array_equal(classes, classes_dev.cpu().numpy())
            _assert_float_close(logits, ref, 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 257, 1023, 1024, 1025, 3 * 1024 + 1])
def test_pipeline_odd_sizes(pipeline, quantized, n):
    """Batch sizes around the chunk (1024 here) and the small-batch limit, from an unaligned
    page-locked buffer and from pageable memory, each output alone or both, fresh random images."""
    net = pipeline
    net.set_host_pipeline(3, 1024)
    rng = np.random.default_rng()
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    classes_ref, logits_ref = golden.predict_raw(images, quantized[0])
    buf = net.pinned_array(n * 784 + 1, np.uint8)
    unaligned = buf[1:].reshape(n, 28, 28)
    unaligned[...] = images
    for source in (images, unaligned):
        for memory in ("pageable", "pinned"):
            classes, logits = _poisoned_outputs(net, n, "fixed", memory)
            net.infer_into(source, "fixed", classes, None)
            np.testing.assert_array_equal(classes, classes_ref)
            net.infer_into(source, "fixed", None, logits)
            np.testing.assert_array_equal(logits, logits_ref)
            classes[...] = -7
            net.infer_into(source, "fixed", classes, logits)
            np.testing.assert_array_equal(classes, classes_ref)


@pytest.mark.gpu
def test_pipeline_errors(pipeline):
    """Bad shapes are refused with the argument named; non-contiguous images are refused (copy
    them with np.ascontiguousarray); device memory given to the host path is refused; the network
    still works afterwards."""
    torch = pytest.importorskip("torch")
    net = pipeline
    for threads, chunk, what in ((-1, 0, "threads"), (65, 0, "threads"), (0, -5, "chunk"), (0, 1 << 21, "chunk")):
        with pytest.raises(gpu.GpuError, match=what) as e:
            net.set_host_pipeline(threads, chunk)
        assert e.value.status == 1
    images = np.random.default_rng().integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    with pytest.raises(ValueError, match="C-contiguous"):
        net.infer(images[::2], "fixed")
    dev = torch.zeros(2000 * 784, dtype=torch.uint8, device="cuda")
    classes = np.empty(2000, np.int32)
    ffi, lib = net.ffi, net.lib
    status = lib.lenet5_gpu_infer_host(
        net._handle,
        gpu.MODES["fixed"],
        ffi.cast("const uint8_t *", dev.data_ptr()),
        2000,
        ffi.cast("int32_t *", ffi.from_buffer(classes)),
        ffi.NULL,
    )
    assert status == 1
    assert "device memory" in ffi.string(lib.lenet5_gpu_last_error()).decode()
    c, _ = net.infer(images[:1000], "fixed")
    np.testing.assert_array_equal(c, golden.predict_raw(images[:1000], fixedspec.load_quantized()[0])[0])
