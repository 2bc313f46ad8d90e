"""The numpy emulation against ap_fixed itself, compiled by g++ with the hls4ml ap_types headers."""

import itertools
import shutil
import subprocess

import numpy as np
import pytest

from lenet5_pynq import fixedpoint, hls_headers
from lenet5_pynq.fixedpoint import FixedFormat

SHAPES = [(16, 6), (8, -2), (5, 7), (12, 12)]
FORMATS = [
    FixedFormat(w, i, signed, q, o)
    for (w, i), signed, q, o in itertools.product(
        SHAPES, (True, False), fixedpoint.ROUNDING_MODES, fixedpoint.SATURATION_MODES
    )
]
EXTRA_FRAC = 5  # the cast's source has this many more fraction bits than the target
SOURCE_WIDTH = 48

PROBE = r"""
#include <cstdio>
#include <cstdint>
#include <vector>
#include "ap_fixed.h"

template <typename T, int W, bool S>
long long raw_of(const T& v) {  // two's complement bits, sign-extended when signed
    unsigned long long bits = v.range(W - 1, 0).to_uint64();
    if (S && (bits >> (W - 1)) & 1) bits |= ~0ULL << (W - 1);
    return (long long)bits;
}

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
void probe(const std::vector<double>& floats, const std::vector<double>& sources) {
    typedef typename std::conditional<S, ap_fixed<W, I, Q, O>, ap_ufixed<W, I, Q, O> >::type T;
    typedef ap_fixed<%(source_width)d, %(source_width)d - (W - I) - %(extra)d> Source;
    for (double f : floats) { T v = f; std::printf("%%lld ", raw_of<T, W, S>(v)); }
    for (double s : sources) { Source src = s; T v = src; std::printf("%%lld ", raw_of<T, W, S>(v)); }
    std::printf("\n");
}

int main() {
    int n;
    std::vector<double> floats, sources;
    double x;
    %(body)s
    return 0;
}
"""


def _body(count):
    lines = []
    for _k, f in enumerate(FORMATS):
        lines.append(
            f"floats.clear(); sources.clear();"
            f'for (int i = 0; i < {count}; ++i) {{ std::scanf("%lf", &x); floats.push_back(x); }}'
            f'for (int i = 0; i < {count}; ++i) {{ std::scanf("%lf", &x); sources.push_back(x); }}'
            f"probe<{f.width}, {f.int_bits}, {'true' if f.signed else 'false'}, {f.rounding}, {f.saturation}>(floats, sources);"
        )
    return "(void)n;\n    " + "\n    ".join(lines)


def _values(fmt, rng, count):
    """Doubles for the constructor and raw source integers for the cast: random values over and
    beyond the range, exact ties, the extremes, one past them, zero, the most negative value."""
    frac = fmt.frac_bits
    span = max(abs(fmt.min_raw), fmt.max_raw, 1)
    edges = [0, 1, -1, fmt.max_raw, fmt.min_raw, fmt.max_raw + 1, fmt.min_raw - 1, -span, 2 * span, -2 * span - 1]
    sub = 1 << EXTRA_FRAC
    edge_sources = [e * sub + d for e in edges for d in (0, sub // 2, -sub // 2, 1, -1)]
    random_sources = rng.integers(-4 * span * sub, 4 * span * sub, size=count - len(edge_sources))
    sources = np.array(edge_sources + list(random_sources), dtype=np.int64)
    floats = np.ldexp(sources.astype(np.float64), -(frac + EXTRA_FRAC))
    return floats, sources


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    try:
        include = hls_headers.include_dir()
    except hls_headers.HeadersMissing as e:
        pytest.skip(str(e))
    work = tmp_path_factory.mktemp("apfixed")
    src = work / "probe.cpp"
    src.write_text(PROBE % {"source_width": SOURCE_WIDTH, "extra": EXTRA_FRAC, "body": _body(COUNT)})
    exe = work / "probe"
    subprocess.run(["g++", "-O1", "-std=c++14", "-w", f"-I{include}", str(src), "-o", str(exe)], check=True)
    return exe


COUNT = 400


@pytest.mark.slow  # the probe's g++ build of 224 ap_fixed instantiations takes most of a minute
def test_emulation_matches_ap_fixed(probe_binary):
    rng = np.random.default_rng(2024)
    inputs, expected_inputs = [], []
    for fmt in FORMATS:
        floats, sources = _values(fmt, rng, COUNT)
        inputs.append(
            " ".join(
                repr(float(v))
                for v in np.concatenate([floats, np.ldexp(sources.astype(float), -(fmt.frac_bits + EXTRA_FRAC))])
            )
        )
        expected_inputs.append((floats, sources))
    out = subprocess.run([str(probe_binary)], input="\n".join(inputs), capture_output=True, text=True, check=True)
    rows = out.stdout.strip().split("\n")
    assert len(rows) == len(FORMATS)
    mismatches = []
    for fmt, row, (floats, sources) in zip(FORMATS, rows, expected_inputs):
        got = np.array(row.split(), dtype=np.int64)
        want = np.concatenate(
            [fixedpoint.from_float(floats, fmt), fixedpoint.cast(sources, fmt.frac_bits + EXTRA_FRAC, fmt)]
        )
        bad = np.flatnonzero(got != want)
        if bad.size:
            i = bad[0]
            value = floats[i % COUNT]
            mismatches.append(f"{fmt.ctype()}: {bad.size} differ, first {value!r}: ap_fixed {got[i]}, numpy {want[i]}")
    assert not mismatches, "\n".join(mismatches)


def test_ties_and_extremes_by_hand():
    f = FixedFormat(8, 8, True, "AP_RND_CONV", "AP_SAT")  # integers -128..127
    assert list(fixedpoint.from_float([0.5, 1.5, 2.5, -0.5, -1.5], f)) == [0, 2, 2, 0, -2]
    f = FixedFormat(8, 8, True, "AP_RND", "AP_SAT")
    assert list(fixedpoint.from_float([0.5, -0.5, -1.5, 200.0, -200.0], f)) == [1, 0, -1, 127, -128]
    f = FixedFormat(8, 8, True, "AP_TRN", "AP_WRAP")
    assert list(fixedpoint.from_float([128.0, -129.0, -0.25], f)) == [-128, 127, -1]
    assert list(fixedpoint.cast([-4, -3, 3], 2, FixedFormat(8, 8, True, "AP_RND_INF", "AP_SAT_SYM"))) == [-1, -1, 1]
    assert list(fixedpoint.cast([1000 << 2], 2, FixedFormat(8, 8, True, "AP_TRN", "AP_SAT_SYM"))) == [127]
    assert list(fixedpoint.cast([-1000 << 2], 2, FixedFormat(8, 8, True, "AP_TRN", "AP_SAT_SYM"))) == [-127]


def test_bad_formats_are_refused():
    with pytest.raises(ValueError, match="rounding"):
        FixedFormat(16, 6, True, "AP_ROUND")
    with pytest.raises(ValueError, match="width"):
        FixedFormat(70, 6)
    with pytest.raises(ValueError, match="NaN"):
        fixedpoint.from_float([np.nan], FixedFormat(16, 6))
