"""The one validation layer for specs and weights (lenet5_pynq.validation): every entry point
(the commands, `fixedspec.load`, `weights.load`, `params=` of the backends, `load_weights` of the
csim backend and of the overlay driver) raises the project's own error, one line, naming the
file and the field, and writes nothing."""

import json

import numpy as np
import pytest

from lenet5_pynq import export, fixedspec, network, quantize, validation, weights
from lenet5_pynq.backends.base import BackendUnavailable
from lenet5_pynq.backends.cpu import FloatBackend, GoldenBackend
from lenet5_pynq.fixedpoint import FixedFormat
from lenet5_pynq.overlay.errors import WeightFormatError
from lenet5_pynq.overlay.weights import prepare_weights


def shipped_spec() -> dict:
    return json.loads(fixedspec.SHIPPED.read_text())


def write_spec(tmp_path, doc, name="spec.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def one_line(error) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def params():
    return weights.load()[0]


def huge(params, key="fc1/kernel", factor=1e30):
    out = dict(params)
    out[key] = params[key] * factor
    return out


# -------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "doc, message",
    [
        ("null", "a fixed-point spec is a JSON object, not null"),
        ("[]", "a fixed-point spec is a JSON object, not a list"),
        ("3", "a fixed-point spec is a JSON object, not 3"),
        ('"spec"', "a fixed-point spec is a JSON object, not 'spec'"),
        ("{", "cannot read fixed-point spec"),
        ("", "cannot read fixed-point spec"),
    ],
)
def test_spec_document_not_an_object(tmp_path, doc, message):
    with pytest.raises(fixedspec.SpecError) as e:
        fixedspec.load(write_spec(tmp_path, doc))
    assert message in one_line(e.value) and "spec.json" in str(e.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("int_bits", "4", "layers.conv2.accum.int_bits must be an integer, not '4'"),
        ("int_bits", 10.0, "layers.conv2.accum.int_bits must be an integer, not 10.0"),
        ("int_bits", None, "layers.conv2.accum.int_bits must be an integer, not null"),
        ("width", 36.0, "layers.conv2.accum.width must be an integer, not 36.0"),
        ("width", "36", "layers.conv2.accum.width must be an integer, not '36'"),
        ("width", True, "layers.conv2.accum.width must be an integer, not True"),
        ("width", 0, "layers.conv2.accum.width 0 is outside 1..62"),
        ("width", 63, "layers.conv2.accum.width 63 is outside 1..62"),
        ("int_bits", 99, "layers.conv2.accum.int_bits 99 gives -63 fraction bits, outside -62..62"),
        ("int_bits", -40, "layers.conv2.accum.int_bits -40 gives 76 fraction bits"),
        ("signed", "no", "layers.conv2.accum.signed must be true or false, not 'no'"),
        ("signed", 1, "layers.conv2.accum.signed must be true or false, not 1"),
        ("rounding", "AP_ROUND", "layers.conv2.accum.rounding must be one of AP_TRN"),
        ("saturation", 3, "layers.conv2.accum.saturation must be one of AP_WRAP"),
        ("colour", "blue", "layers.conv2.accum.colour is not a field of a format"),
    ],
)
def test_spec_format_fields(tmp_path, field, value, message):
    d = shipped_spec()
    d["layers"]["conv2"]["accum"][field] = value
    with pytest.raises(fixedspec.SpecError) as e:
        fixedspec.load(write_spec(tmp_path, d))
    assert message in one_line(e.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(layers=[]), "layers must be an object keyed by layer name, not a list"),
        (lambda d: d.update(layers=None), "layers must be an object keyed by layer name, not null"),
        (lambda d: d["layers"].update(conv1=7), "layers.conv1 must be an object, not 7"),
        (lambda d: d["layers"].pop("fc1"), "layers.fc1 is missing"),
        (lambda d: d["layers"]["fc3"].pop("bias"), "layers.fc3.bias is missing"),
        (lambda d: d["layers"]["fc3"]["kernel"].pop("width"), "layers.fc3.kernel.width is missing"),
        (lambda d: d["layers"].update(fc4=d["layers"]["fc3"]), "layers.fc4 is not a layer of the network"),
        (lambda d: d.update(input=None), "input must be an object with width"),
        (lambda d: d.pop("input"), "input is missing"),
        (lambda d: d.update(format_version="1"), "format_version '1', expected 1"),
        (lambda d: d.update(format_version=True), "format_version True, expected 1"),
        (lambda d: d.update(meta=[]), "meta must be an object, not a list"),
        (lambda d: d.update(weights_sha256=5), "weights_sha256 must be a string, not 5"),
        (lambda d: d["input"].update(signed=True), "input must be the pixel byte"),
    ],
)
def test_spec_structure(tmp_path, change, message):
    d = shipped_spec()
    change(d)
    with pytest.raises(fixedspec.SpecError) as e:
        fixedspec.load(write_spec(tmp_path, d))
    assert message in one_line(e.value)


def test_spec_built_in_python_is_checked_too():
    spec = fixedspec.load()
    f = spec.layers["conv2"]
    bad = fixedspec.FixedSpec(
        spec.input, {**spec.layers, "conv2": fixedspec.LayerFormats(f.kernel, f.bias, FixedFormat(36.0, 10), f.output)}
    )
    with pytest.raises(fixedspec.SpecError, match=r"layers\.conv2\.accum\.width must be an integer, not 36\.0"):
        bad.validate()


def test_float_width_never_reaches_the_hls_header(tmp_path, capsys):
    """`width: 36.0` used to be written into lenet5_types.h as ap_fixed<36.0, ...>."""
    d = shipped_spec()
    d["layers"]["conv2"]["accum"]["width"] = 36.0
    spec = write_spec(tmp_path, d)
    out = tmp_path / "generated"
    assert export.main(["hls", "--out", str(out), "--spec", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layers.conv2.accum.width must be an integer, not 36.0" in err
    assert not out.exists() or not any(out.iterdir())


def test_shipped_spec_and_weights_pass():
    spec = fixedspec.load(fixedspec.SHIPPED, weights.SHIPPED)
    spec.validate()
    assert validation.check_params(weights.load()[0]).keys() == set(network.parameter_names())


# ------------------------------------------------------------------------------ weights
def test_empty_npz(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(weights.WeightsError) as e:
        weights.load(empty)
    assert "empty.npz: empty file, not a weight archive" in one_line(e.value)
    out = tmp_path / "spec.json"
    assert quantize.main(["--weights", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty.npz" in err and not out.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"PK\x03\x04 not really a zip", "not a readable weight archive"),
        (b"\x00" * 64, "not a readable weight archive"),
    ],
)
def test_garbage_npz(tmp_path, content, message):
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    with pytest.raises(weights.WeightsError) as e:
        weights.load(path)
    assert message in one_line(e.value)


def test_npz_missing_file_directory_and_npy(tmp_path):
    with pytest.raises(weights.WeightsError, match="no such weight archive"):
        weights.load(tmp_path / "nope.npz")
    with pytest.raises(weights.WeightsError, match="is a directory"):
        weights.load(tmp_path)
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(weights.WeightsError, match="not an .npz archive"):
        weights.load(npy)


def test_npz_of_strings(tmp_path, params):
    arrays = {k: v for k, v in params.items()}
    arrays["conv1/bias"] = np.array(["a"] * 6)
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    with pytest.raises(weights.WeightsError) as e:
        weights.load(path)
    assert "conv1/bias must hold real numbers" in one_line(e.value)


@pytest.mark.parametrize("factor", [1e30, 1e6, 1e5])
def test_huge_finite_weights_are_refused(params, factor):
    """Finite but huge weights gave NaN logits (every image class 0) in the float backends."""
    with pytest.raises(weights.WeightsError) as e:
        weights.check(huge(params, factor=factor), "params")
    assert "params: fc1/kernel holds" in one_line(e.value) and "beyond +-32768" in str(e.value)


def test_huge_weights_in_an_archive(tmp_path, params):
    path = tmp_path / "huge.npz"
    arrays = {k: v for k, v in huge(params, "conv1/bias").items()}
    np.savez(path, **arrays)
    with pytest.raises(weights.WeightsError, match=r"huge.npz: conv1/bias holds 6 values beyond"):
        weights.load(path)
    with pytest.raises(weights.WeightsError, match="huge.npz"):
        GoldenBackend(weights_path=path, spec_path=fixedspec.SHIPPED)
    with pytest.raises(weights.WeightsError, match="huge.npz"):
        FloatBackend(weights_path=path)


def test_bound_keeps_float_logits_finite(params):
    assert validation.max_float_logit() < np.finfo(np.float32).max
    scale = (validation.MAX_ABS_WEIGHT * 0.99) / max(np.abs(v).max() for v in params.values())
    big = {k: v * np.float32(scale) for k, v in params.items()}
    images = np.full((4, 28, 28), 255, np.uint8)
    logits = FloatBackend(params=big, engine="numpy").predict(images).logits
    assert np.all(np.isfinite(logits))


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda p: huge(p), "params: fc1/kernel holds"),
        (lambda p: {**p, "fc2/bias": np.full(84, np.nan, np.float32)}, "params: fc2/bias holds NaN or infinity"),
        (lambda p: {**p, "fc2/bias": np.zeros(83, np.float32)}, "params: fc2/bias has shape (83,), expected (84,)"),
        (lambda p: {k: v for k, v in p.items() if k != "conv2/kernel"}, "params: missing conv2/kernel"),
        (lambda p: {**p, "fc3/bias": "zeros"}, "params: fc3/bias must hold real numbers"),
        (lambda p: {**p, "fc3/bias": np.zeros(10, complex)}, "params: fc3/bias must hold real numbers"),
        (lambda p: list(p.values()), "params: weights must be a mapping"),
    ],
)
def test_params_do_not_skip_the_check(params, bad, message):
    with pytest.raises(weights.WeightsError) as e:
        FloatBackend(params=bad(params), engine="numpy")
    assert message in one_line(e.value)


def test_save_refuses_huge_weights_and_writes_nothing(tmp_path, params):
    out = tmp_path / "w.npz"
    with pytest.raises(weights.WeightsError):
        weights.save(out, huge(params))
    assert list(tmp_path.iterdir()) == []


def test_quantize_refuses_weights_no_16_bit_format_holds(tmp_path, capsys, params, mnist_dir):
    """Representable weights whose activations are too large for a 16-bit output word."""
    path = tmp_path / "big.npz"
    weights.save(path, {k: np.where(v > 0, 32000.0, -1.0).astype(np.float32) for k, v in params.items()})
    out = tmp_path / "spec.json"
    assert (
        quantize.main(["--weights", str(path), "--mnist", str(mnist_dir), "--calibration", "50", "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "big.npz: no fixed-point formats hold this network" in err
    assert not out.exists()


# ------------------------------------------------------------------- the overlay's driver
def test_overlay_missing_bin_is_the_drivers_error(tmp_path):
    with pytest.raises(WeightFormatError) as e:
        prepare_weights(tmp_path / "missing.bin")
    assert "missing.bin: cannot read the weight-load stream" in one_line(e.value)
    assert not isinstance(e.value, FileNotFoundError)


def test_overlay_ragged_bin(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"\x00" * 13)
    with pytest.raises(WeightFormatError, match="13 bytes, a weight-load stream is whole 8-byte beats"):
        prepare_weights(path)


@pytest.mark.parametrize(
    "source, message",
    [
        ("empty.npz", "empty.npz: empty file"),
        ("missing.npz", "missing.npz: no such weight archive"),
    ],
)
def test_overlay_bad_archives(tmp_path, source, message):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(WeightFormatError, match=message):
        prepare_weights(tmp_path / source)


def test_overlay_params_and_spec(tmp_path, params):
    with pytest.raises(WeightFormatError, match="fc1/kernel holds"):
        prepare_weights(huge(params))
    d = shipped_spec()
    d["layers"]["fc1"]["bias"]["signed"] = "no"
    with pytest.raises(WeightFormatError, match=r"layers\.fc1\.bias\.signed must be true or false"):
        prepare_weights(params, write_spec(tmp_path, d))


def test_overlay_driver_load_weights(tmp_path):
    """`LeNet5Overlay.load_weights` on the simulated board: the driver's error, nothing sent."""
    from simboard_fixtures import make_board, make_overlay

    overlay = make_overlay(make_board())
    try:
        before = overlay.weights_source
        with pytest.raises(WeightFormatError, match="missing.bin"):
            overlay.load_weights(tmp_path / "missing.bin")
        (tmp_path / "empty.npz").write_bytes(b"")
        with pytest.raises(WeightFormatError, match="empty.npz: empty file"):
            overlay.load_weights(tmp_path / "empty.npz")
        assert overlay.weights_source == before
    finally:
        overlay.close()


# -------------------------------------------------------------------- the csim backend
@pytest.fixture(scope="module")
def csim():
    from lenet5_pynq.backends.csim import CsimBackend

    try:
        return CsimBackend()
    except BackendUnavailable as e:
        pytest.skip(str(e))


def test_csim_load_weights(csim, tmp_path, params):
    with pytest.raises(weights.WeightsError, match="params: fc1/kernel holds"):
        csim.load_weights(params=huge(params))
    with pytest.raises(weights.WeightsError, match="must hold real numbers"):
        csim.load_weights(params={**params, "fc3/bias": "zeros"})
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(weights.WeightsError, match="empty.npz: empty file"):
        csim.load_weights(tmp_path / "empty.npz")
    # Representable, but beyond the built formats: saturation is refused unless asked for.
    with pytest.raises(weights.WeightsError, match="would saturate"):
        csim.load_weights(params=huge(params, factor=100.0))
    d = shipped_spec()
    d["layers"]["fc2"]["output"]["rounding"] = "AP_TRN"
    with pytest.raises(fixedspec.SpecError, match=r"layers\.fc2\.output is ap_fixed<16, 7, AP_TRN, AP_SAT>"):
        csim.load_weights(spec_path=write_spec(tmp_path, d))
    d["layers"]["fc2"]["output"]["width"] = 16.0
    with pytest.raises(fixedspec.SpecError, match=r"layers\.fc2\.output\.width must be an integer"):
        csim.load_weights(spec_path=write_spec(tmp_path, d))
    images = np.zeros((2, 28, 28), np.uint8)
    assert np.array_equal(csim.predict(images).logits, GoldenBackend().predict(images).logits)  # still the shipped set
