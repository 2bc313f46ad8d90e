"""The HLS accelerator: generated headers, stream formats, the testbench and the csim backend
(the budget: tests/test_budget.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet5_pynq import export, fixedspec, golden, hls_config, hls_stream, network, weights

REPO = Path(__file__).resolve().parents[1]
HLS_SRC = REPO / "hls_src"
HAVE_GXX = shutil.which("g++") is not None and shutil.which("make") is not None


def _hls4ml_installed() -> bool:
    from lenet5_pynq import hls_headers

    try:
        hls_headers.include_dir()
        return True
    except hls_headers.HeadersMissing:
        return False


needs_toolchain = pytest.mark.skipif(
    not (HAVE_GXX and _hls4ml_installed()), reason="needs g++, make and the hls4ml headers"
)


def _run(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env, **kwargs)


# ------------------------------------------------------------------------------------ headers
def test_generated_headers_are_not_stale():
    proc = _run(sys.executable, "-m", "lenet5_pynq.export", "hls", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n(run: python -m lenet5_pynq.export hls)"


def test_stale_check_notices_a_changed_header(tmp_path):
    export.write_headers(tmp_path)
    assert export.stale_headers(tmp_path) == []
    path = tmp_path / export.TYPES_H
    path.write_text(path.read_text().replace("pe = 16", "pe = 8"))
    assert export.stale_headers(tmp_path) == [export.TYPES_H]


def test_header_carries_the_configs_and_formats():
    text = (HLS_SRC / "generated" / export.TYPES_H).read_text()
    _layers, spec = fixedspec.load_quantized()
    for layer in network.LAYERS:
        p = hls_config.PARALLELISM[layer.name]
        block = text.split(f"struct {layer.name}_config {{")[1].split("};")[0]
        assert f"pe = {p.pe};" in block and f"simd = {p.simd};" in block
        assert f"typedef {spec.layers[layer.name].accum.ctype()} {layer.name}_accum_t;" in text
    assert f'kVlnv[] = "{hls_config.VLNV}"' in text


def test_memory_layout_is_a_permutation_of_the_kernel():
    layers, _ = fixedspec.load_quantized()
    for shape, q in zip(network.layer_shapes(), layers):
        banked = export._memory_layout(shape, q.kernel)
        p = hls_config.PARALLELISM[q.name]
        m = q.kernel.reshape(shape.fan_in, -1)
        if isinstance(shape.layer, network.Conv):  # [nf][sf][pe][simd]
            nf, sf, pe, s = np.indices(banked.shape)
        else:  # [sf][nf][pe][simd]
            sf, nf, pe, s = np.indices(banked.shape)
        assert (banked == m[sf * p.simd + s, nf * p.pe + pe]).all(), q.name
        assert sorted(banked.reshape(-1)) == sorted(m.reshape(-1))


# ------------------------------------------------------------------------------------ streams
def test_result_layout_is_three_beats():
    assert np.dtype([("logits", "<i2", (10,)), ("cls", "<u2"), ("pad", "<u2")]) == hls_stream.RESULT_DTYPE
    assert hls_stream.OUT_BEATS_PER_IMAGE == 3 and hls_stream.IN_BEATS_PER_IMAGE == 98


def test_image_packing_round_trips():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    beats = hls_stream.pack_images(images)
    assert beats.shape == (5 * 98,) and beats.dtype == np.uint64
    # pixel i of an image in byte i % 8 of beat i // 8, little-endian
    assert int(beats[1]) & 0xFF == images[0].reshape(-1)[8]
    assert (int(beats[98]) >> 56) & 0xFF == images[1].reshape(-1)[7]
    np.testing.assert_array_equal(hls_stream.unpack_images(beats), images)


def test_result_packing_round_trips():
    rng = np.random.default_rng(2)
    logits = rng.integers(-32768, 32768, (7, 10)).astype(np.int16)
    classes = rng.integers(0, 10, 7)
    beats = hls_stream.pack_results(classes, logits)
    assert beats.shape == (21,)
    assert int(beats[0]) & 0xFFFF == logits[0, 0] & 0xFFFF
    assert (int(beats[2]) >> 32) & 0xFFFF == classes[0]
    c, unpacked = hls_stream.unpack_results(beats)
    np.testing.assert_array_equal(c, classes)
    np.testing.assert_array_equal(unpacked, logits)
    with pytest.raises(hls_stream.StreamFormatError):
        hls_stream.unpack_results(beats[:-1])


def test_weight_stream_layout():
    layers, _ = fixedspec.load_quantized()
    beats = hls_stream.pack_weight_stream(layers)
    n = hls_stream.weight_word_count()
    assert len(beats) == hls_stream.weight_stream_beats() == 1 + -(-n // 4)
    header = beats[:1].view(hls_stream.WEIGHT_HEADER_DTYPE)[0]
    assert header["magic"] == hls_stream.WEIGHT_MAGIC and header["format"] == hls_stream.WEIGHT_FORMAT
    assert int(header["words_lo"]) | int(header["words_hi"]) << 16 == n
    words = beats[1:].view("<i2")
    first = layers[0]
    k = first.kernel.size
    np.testing.assert_array_equal(words[:k], first.kernel.reshape(-1))  # Keras (kh, kw, cin, cout) order
    np.testing.assert_array_equal(words[k : k + first.bias.size], first.bias)
    assert not words[n:].any()  # zero padding
    ack = np.zeros(1, hls_stream.WEIGHT_ACK_DTYPE)
    ack[0] = (hls_stream.WEIGHT_MAGIC, 0, n & 0xFFFF, hls_stream.weight_checksum(words[:n]))
    assert hls_stream.parse_ack(ack.view("<u8")[0])["status"] == 0
    with pytest.raises(hls_stream.StreamFormatError):
        hls_stream.parse_ack(np.uint64(0))


def test_alternate_weights_differ_but_fit_the_spec():
    params, _ = weights.load()
    alt = export.alternate_params(params)
    for key in network.parameter_names():
        assert alt[key].shape == params[key].shape
        assert np.abs(alt[key]).max() <= np.abs(params[key]).max() + 1e-7
    assert not np.allclose(alt["conv1/kernel"], params["conv1/kernel"])


# ------------------------------------------------------------------------------- the testbench
@needs_toolchain
@pytest.mark.slow
def test_make_csim_passes(mnist_dir):
    """The testbench: batches 0, 1 and 10,000, the alternate weight set, a bad header, the reload."""
    proc = _run("make", "-C", str(HLS_SRC), "csim", f"PYTHON={sys.executable}", timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "PASSED" in out and "10000 images: bit-exact" in out


# ---------------------------------------------------------------------------- csim backend
@pytest.fixture(scope="module")
def csim():
    if not (HAVE_GXX and _hls4ml_installed()):
        pytest.skip("needs g++, make and the hls4ml headers")
    from lenet5_pynq.backends import load_backend

    return load_backend("csim")


@pytest.mark.slow
def test_csim_backend_matches_cpu_on_all_test_images(csim, mnist_test):
    from lenet5_pynq.backends import load_backend

    images, _ = mnist_test
    got = csim.predict(images)
    want = load_backend("cpu").predict(images)
    assert got.logits.dtype == np.int16
    same = np.all(got.logits == want.logits, axis=1) & (got.classes == want.classes)
    assert same.sum() == len(images), f"{len(images) - same.sum()} of {len(images)} images differ"
    assert got.logit_scale == want.logit_scale


def test_csim_backend_slice_and_edge_cases(csim, mnist_test):
    from lenet5_pynq.backends import load_backend

    images = mnist_test[0][:300]
    got, want = csim.predict(images), load_backend("cpu").predict(images)
    np.testing.assert_array_equal(got.logits, want.logits)
    np.testing.assert_array_equal(got.classes, want.classes)
    assert len(csim.predict(images[:0]).classes) == 0
    assert csim.predict(images[0]).classes.shape == (1,)


def test_csim_backend_reloads_weights(csim, mnist_test):
    from lenet5_pynq.backends import load_backend

    images = mnist_test[0][:200]
    params, _ = weights.load()
    alt = export.alternate_params(params)
    other = load_backend("csim")
    ack = other.load_weights(params=alt)
    assert ack["status"] == hls_stream.ACK_OK
    alt_layers, _ = export.load_set(alternate=True)
    classes, logits = golden.predict_raw(images, alt_layers)
    got = other.predict(images)
    np.testing.assert_array_equal(got.logits, logits)
    np.testing.assert_array_equal(got.classes, classes)
    # The first backend still answers with the shipped weights (it reloads them).
    want = load_backend("cpu").predict(images)
    np.testing.assert_array_equal(csim.predict(images).logits, want.logits)


def test_csim_stream_contract(csim, mnist_test):
    from lenet5_pynq import csim_library as csim_module

    out, last = csim_module.run_stream(hls_stream.MODE_CLASSIFY, 0, np.zeros(0, np.uint64), 4)
    assert len(out) == 0  # a zero batch produces no beat
    out, last = csim_module.run_stream(hls_stream.MODE_CLASSIFY, 2, hls_stream.pack_images(mnist_test[0][:2]), 6)
    assert len(out) == 6 and last.tolist() == [0, 0, 0, 0, 0, 1]


def test_tcl_targets_match_the_package():
    """build_prj.tcl takes its targets from the generated part table (hls_config.PARTS), not from
    literals of its own; tests/test_tcl.py dry-runs it for every board."""
    table = (HLS_SRC / "generated" / export.PARTS_TCL).read_text()
    assert table == export.parts_tcl(), "stale: python -m lenet5_pynq.export hls"
    for board, p in hls_config.PARTS.items():
        assert f"    {board} {{part {p.part} build {p.build}}} \\" in table, board
    assert f"set lenet5_default_board {hls_config.DEFAULT_BOARD}\n" in table
    assert f"set lenet5_period_ns {1000 / hls_config.CLOCK_MHZ:g}\n" in table
    script = (HLS_SRC / "build_prj.tcl").read_text()
    assert "source [file join $here generated lenet5_parts.tcl]" in script
    for p in hls_config.PARTS.values():
        assert p.part not in script, f"{p.part} typed in build_prj.tcl: it belongs to hls_config.PARTS"
