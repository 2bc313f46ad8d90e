"""The `cpu` backend's C kernel (native/fixed_net.c, issue 14 part 3) against the numpy golden
model, which stays the reference: raw logits and classes identical on all 10,000 MNIST test
images, on random and extreme images, for specs with other formats and every rounding and
saturation mode, on every vector path this machine has, with 1 and 2 threads and any batch size;
and the numpy fallback with its reasons.  Skips only where there is no C compiler."""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lenet5_pynq import backends, fixedspec, golden, native, network, weights
from lenet5_pynq.backends.base import BackendUnavailable
from lenet5_pynq.backends.cpu import EXACT_SUM_LIMIT, GoldenBackend, fixed_defines, fixed_kernel_problem
from lenet5_pynq.fixedpoint import ROUNDING_MODES, SATURATION_MODES, FixedFormat


@pytest.fixture(scope="module", autouse=True)
def compiler():
    try:
        native._compiler()
    except native.BuildError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def shipped():
    return GoldenBackend(engine="c")


def random_images(count: int, seed: int = 14) -> np.ndarray:
    """Uniform random pixels, then all 0, all 255, a 0/255 checkerboard and sparse full pixels."""
    rng = np.random.default_rng(seed)
    uniform = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    extremes = np.zeros((4, 28, 28), np.uint8)
    extremes[1] = 255
    extremes[2] = 255 * ((np.arange(28)[:, None] + np.arange(28)) % 2)
    extremes[3] = 255 * (rng.random((28, 28)) < 0.1)
    return np.concatenate([uniform, extremes])


def assert_golden(backend: GoldenBackend, images: np.ndarray) -> None:
    """The backend's prediction is golden.predict_raw's, bit for bit."""
    classes, logits = golden.predict_raw(images, backend.layers)
    got = backend.predict(images)
    assert got.logits.dtype == np.int16 and got.logits.shape == logits.shape
    differing = np.flatnonzero((got.logits != logits).any(axis=1))
    assert differing.size == 0, f"{differing.size} images differ, the first {differing[:5]}"
    assert np.array_equal(got.classes, classes) and got.logit_scale == backend.spec.logits.scale


# ----------------------------------------------------------------------------- specs
def make_spec(outputs: dict[str, tuple], kernel_int_bits: dict[str, int] | None = None) -> fixedspec.FixedSpec:
    """The shipped spec with other output formats (width, int_bits, rounding, saturation) and
    kernel integer bits; accumulators of 48 bits with the fraction bits the products have."""
    shipped = fixedspec.load()
    layers, in_frac = {}, shipped.input.frac_bits
    for layer in network.LAYERS:
        f = shipped.layers[layer.name]
        kernel = dataclasses.replace(f.kernel, int_bits=(kernel_int_bits or {}).get(layer.name, f.kernel.int_bits))
        frac = in_frac + kernel.frac_bits
        accum = FixedFormat(48, 48 - frac, True, "AP_TRN", "AP_WRAP")
        bias = f.bias if f.bias.frac_bits <= frac else dataclasses.replace(f.bias, int_bits=f.bias.width - frac)
        width, int_bits, rounding, saturation = outputs[layer.name]
        output = FixedFormat(width, int_bits, True, rounding, saturation)
        layers[layer.name] = fixedspec.LayerFormats(kernel, bias, accum, output)
        in_frac = output.frac_bits
    spec = fixedspec.FixedSpec(shipped.input, layers)
    spec.validate("test spec")
    return spec


def _one_mode_everywhere(rounding: str, saturation: str) -> tuple:
    """Every layer rounds by `rounding`; conv1 and fc3 have 8-bit kernels and shifts of 3 and 5
    bits, so that ties (the only words where rounding modes differ) are frequent, and fc3 (no
    ReLU) has them on both signs; fc3 saturates at +-8 by `saturation`."""
    outputs = {"conv1": (16, 3), "conv2": (16, 5), "fc1": (16, 6), "fc2": (16, 7), "fc3": (16, 4)}
    sats = {name: "AP_SAT" for name in outputs} | {"fc3": saturation}
    return {name: (*wi, rounding, sats[name]) for name, wi in outputs.items()}, {"conv1": 8, "fc3": 8}


# Between them: every rounding mode on every layer, every saturation mode on fc3 (where no ReLU
# hides negative words), narrow outputs that wrap and saturate often, conv layers that wrap or
# zero (pooled after their cast, fixed_net.c `pools_first`), a negative shift (more output
# fraction bits than the accumulator's) and shifts of 20 bits.
SPECS = {
    **{
        f"round-{rounding}": _one_mode_everywhere(rounding, saturation)
        for rounding, saturation in zip(ROUNDING_MODES, [*SATURATION_MODES, *SATURATION_MODES])
    },
    "narrow-a": (
        {
            "conv1": (10, 3, "AP_RND", "AP_WRAP"),
            "conv2": (12, 5, "AP_RND_CONV", "AP_SAT_ZERO"),
            "fc1": (12, 6, "AP_TRN", "AP_WRAP"),
            "fc2": (12, 7, "AP_RND_INF", "AP_SAT"),
            "fc3": (8, 5, "AP_RND_ZERO", "AP_SAT_SYM"),
        },
        None,
    ),
    "narrow-b": (
        {
            "conv1": (16, 3, "AP_RND_CONV", "AP_SAT_ZERO"),
            "conv2": (10, 4, "AP_RND_INF", "AP_WRAP"),
            "fc1": (14, 4, "AP_RND_MIN_INF", "AP_SAT_ZERO"),
            "fc2": (12, 5, "AP_TRN_ZERO", "AP_SAT_SYM"),
            "fc3": (8, 5, "AP_RND_CONV", "AP_WRAP"),
        },
        None,
    ),
    "shifts": (
        {
            "conv1": (16, 2, "AP_RND", "AP_SAT"),
            "conv2": (16, 9, "AP_RND_CONV", "AP_SAT"),
            "fc1": (16, 6, "AP_RND_INF", "AP_SAT_SYM"),
            "fc2": (16, 7, "AP_TRN", "AP_SAT"),
            "fc3": (16, 8, "AP_RND", "AP_WRAP"),
        },
        {"conv1": 12, "fc1": 1},
    ),
}


@pytest.fixture(scope="module", params=sorted(SPECS))
def other_spec(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "fixed_spec.json"
    fixedspec.save(make_spec(*SPECS[request.param]), path)
    return GoldenBackend(weights_path=None, spec_path=path, engine="c")


def test_the_specs_cover_every_mode_and_both_pool_orders():
    fc3 = [outputs["fc3"] for outputs, _ in SPECS.values()]
    assert {o[2] for o in fc3} == set(ROUNDING_MODES) and {o[3] for o in fc3} == set(SATURATION_MODES)
    conv_saturations = {outputs[name][3] for outputs, _ in SPECS.values() for name in ("conv1", "conv2")}
    assert {"AP_SAT", "AP_WRAP", "AP_SAT_ZERO"} <= conv_saturations  # pooled before and after the cast
    shifts = [
        int(v.strip("()")) for s in SPECS.values() for k, v in fixed_defines(make_spec(*s)).items() if "SHIFT" in k
    ]
    assert min(shifts) < 0 and max(shifts) >= 20 and min(abs(x) for x in shifts) <= 3


# ------------------------------------------------------------------------------ identity
def test_all_mnist_test_images_are_bit_identical(shipped, mnist_test):
    assert shipped.engine == "c" and shipped.label == "cpu"
    assert_golden(shipped, mnist_test[0])


def test_random_and_extreme_images_are_bit_identical(shipped):
    assert_golden(shipped, random_images(300))


def test_other_specs_are_bit_identical(other_spec, mnist_test):
    images = np.concatenate([mnist_test[0][:1000], random_images(200)])
    assert_golden(other_spec, images)
    # the spec reached the kernel: its logits are not the shipped spec's
    assert not np.array_equal(other_spec.predict(images[:50]).logits, GoldenBackend().predict(images[:50]).logits)


@pytest.mark.parametrize("bits", ["0", "128", "256", "512"])
def test_every_vector_path_is_bit_identical(bits, mnist_test, tmp_path):
    """FIXED_VECTOR_BITS picks the widest path up to it that this machine has: portable C
    vectors, SSE2, AVX2, AVX-512 (with VNNI)."""
    images = np.concatenate([mnist_test[0][:300], random_images(100)])
    for spec in (fixedspec.load(), make_spec(*SPECS["narrow-b"])):
        path = tmp_path / "fixed_spec.json"
        fixedspec.save(spec, path)
        backend = GoldenBackend(spec_path=path, engine="c")
        backend._use_kernel(*native.load("fixed_net.c", {**fixed_defines(spec), "FIXED_VECTOR_BITS": bits}))
        assert (backend.isa == "portable") == (bits == "0"), backend.isa
        assert_golden(backend, images)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("count", [0, 1, 37])
def test_thread_counts_and_batch_sizes(threads, count, mnist_test):
    backend = GoldenBackend(engine="c", threads=threads)
    images = np.concatenate([mnist_test[0][:count], random_images(count)])[:count]
    assert_golden(backend, images)
    assert backend.predict(images).logits.shape == (count, network.NUM_CLASSES)


def test_equal_logits_give_the_first_class(tmp_path):
    """fc3 weights of two classes copied onto the others: every image ties, numpy's argmax takes
    the first of equal maxima, and so must the kernel."""
    params, meta = weights.load()
    kernel, bias = params["fc3/kernel"].copy(), params["fc3/bias"].copy()
    kernel[:, 5:], bias[5:] = kernel[:, 3:4], bias[3]  # class 3 ties with 5..9
    path = tmp_path / "tied.npz"
    weights.save(path, {**params, "fc3/kernel": kernel, "fc3/bias": bias}, meta)
    shutil.copy(fixedspec.SHIPPED, tmp_path / fixedspec.SHIPPED.name)
    spec = fixedspec.load(tmp_path / fixedspec.SHIPPED.name)
    fixedspec.save(dataclasses.replace(spec, weights_sha256=""), tmp_path / fixedspec.SHIPPED.name)
    backend = GoldenBackend(weights_path=path, engine="c")
    images = random_images(100)
    assert_golden(backend, images)
    assert set(backend.predict(images).classes) & {5, 6, 7, 8, 9} == set()


@pytest.mark.parametrize("signs", ["+++++", "++-+-", "+++-+", "++++-"])
def test_extreme_weights_reach_the_accumulator_bounds(signs, tmp_path):
    """Every kernel word at its format's most positive (+) or most negative (-) value, no biases:
    with full pixels the activations saturate at 32767, so the layer after them sums 16-bit
    extremes over its whole fan-in (for fc1, 256 terms of 32767 * -32768, far beyond int32: the
    kernel's lo/hi split must keep every int32 sum in range)."""
    params, meta = weights.load()
    spec = fixedspec.load()
    extreme = {}
    for layer, sign in zip(network.LAYERS, signs):
        top = 2.0 ** (spec.layers[layer.name].kernel.int_bits - 1)  # saturates to the extreme word
        extreme[f"{layer.name}/kernel"] = np.full_like(params[f"{layer.name}/kernel"], top if sign == "+" else -top)
        extreme[f"{layer.name}/bias"] = np.zeros_like(params[f"{layer.name}/bias"])
    path = tmp_path / "extreme.npz"
    weights.save(path, extreme, meta)
    fixedspec.save(dataclasses.replace(spec, weights_sha256=""), tmp_path / fixedspec.SHIPPED.name)
    backend = GoldenBackend(weights_path=path, engine="c")
    images = random_images(20)
    assert_golden(backend, images)  # a wrapped int32 sum would turn a saturated negative word positive


def test_one_image_without_a_batch_axis(shipped, mnist_test):
    one = mnist_test[0][7]
    assert np.array_equal(shipped.predict(one).logits, golden.predict_raw(one[None], shipped.layers)[1])


def test_read_only_and_strided_images(shipped):
    images = random_images(9)
    read_only = np.frombuffer(images.tobytes(), np.uint8).reshape(images.shape)
    for view in (read_only, images[::2], np.asfortranarray(images)):
        assert np.array_equal(
            shipped.predict(view).logits, golden.predict_raw(np.ascontiguousarray(view), shipped.layers)[1]
        )


def test_concurrent_predicts_share_one_backend(shipped, mnist_test):
    batches = [mnist_test[0][i * 200 : (i + 1) * 200] for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(shipped.predict, batches))
    for images, got in zip(batches, results):
        assert np.array_equal(got.logits, golden.predict_raw(images, shipped.layers)[1])


# ------------------------------------------------------------------------ the numpy engine
def test_numpy_engine_runs_the_golden_model(mnist_test):
    backend = GoldenBackend(engine="numpy")
    assert backend.engine == "numpy" and backend.label == "cpu-numpy" and backend.isa is None
    assert backends.load_backend("cpu-numpy").label == "cpu-numpy"  # bench --peer cpu-numpy finds its rows
    images = mnist_test[0][:64]
    assert np.array_equal(backend.predict(images).logits, GoldenBackend(engine="c").predict(images).logits)


def test_unsupported_spec_falls_back_to_numpy_with_the_reason(tmp_path, capsys, monkeypatch):
    outputs = dict(SPECS["narrow-a"][0], fc3=(16, 70, "AP_RND", "AP_SAT"))  # -54 fraction bits: a shift over 62
    path = tmp_path / "fixed_spec.json"
    fixedspec.save(make_spec(outputs), path)
    with pytest.raises(BackendUnavailable, match=r"fc3: the cast shifts by 7\d bits, beyond the C kernel's 62"):
        GoldenBackend(spec_path=path, engine="c")
    monkeypatch.setattr(native, "_warned", set())
    backend = GoldenBackend(spec_path=path)
    assert backend.engine == "numpy" and backend.label == "cpu (numpy)"
    assert "cpu runs on numpy (slower): fc3: the cast shifts by 7" in capsys.readouterr().err
    backend.predict(random_images(2))


def test_no_compiler_falls_back_to_numpy_saying_so_once(monkeypatch, capsys):
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.setattr(native, "_warned", set())
    first, second = GoldenBackend(), GoldenBackend()
    assert first.engine == second.engine == "numpy" and first.label == "cpu (numpy)"
    assert capsys.readouterr().err.count("cpu runs on numpy (slower): no C compiler found") == 1
    with pytest.raises(BackendUnavailable, match="no C compiler found"):
        GoldenBackend(engine="c")


def test_biases_too_large_for_exact_sums_are_refused():
    layers, _ = fixedspec.load_quantized()
    assert fixed_kernel_problem(layers) is None
    shift = layers[2].formats.bias_shift
    big = dataclasses.replace(layers[2], bias=np.full_like(layers[2].bias, -(EXACT_SUM_LIMIT >> shift) - 1))
    assert "fc1: an aligned bias reaches" in fixed_kernel_problem([*layers[:2], big, *layers[3:]])


def test_accumulators_wider_than_float64_are_refused_as_numpy_refuses(tmp_path):
    spec = fixedspec.load()
    f = spec.layers["fc2"]
    wide = dataclasses.replace(f.accum, width=60, int_bits=60 - f.accum.frac_bits)
    spec = dataclasses.replace(
        spec, layers={**spec.layers, "fc2": dataclasses.replace(f, accum=wide)}, weights_sha256=""
    )
    path = tmp_path / "fixed_spec.json"
    fixedspec.save(spec, path)
    for engine in ("c", "numpy"):
        with pytest.raises(ValueError, match="fc2: accumulator .* wider than float64"):
            GoldenBackend(spec_path=path, engine=engine).predict(random_images(1))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"engine": "fortran"}, "engine must be auto, c or numpy, not 'fortran'"),
        ({"threads": 0}, r"threads must be a whole number of at least 1 \(or None\), not 0"),
        ({"threads": -2}, r"threads must be a whole number of at least 1 \(or None\), not -2"),
        ({"threads": 1.5}, r"threads must be a whole number of at least 1 \(or None\), not 1.5"),
        ({"threads": True}, r"threads must be a whole number of at least 1 \(or None\), not True"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, error):
    with pytest.raises(ValueError, match=error):
        GoldenBackend(**kwargs)


@pytest.mark.parametrize("engine", ["c", "numpy"])
def test_bad_images_are_refused_by_both_engines(engine):
    backend = GoldenBackend(engine=engine)
    with pytest.raises(TypeError, match="must be uint8"):
        backend.predict(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\)"):
        backend.predict(np.zeros((2, 28, 27), np.uint8))
