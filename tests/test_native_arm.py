"""The float kernel on the boards' ARM cores (issues 12 and 14), cross-built and run under
qemu-user (lenet5_pynq.native.cross): its logits agree with a float64 reference within
float_reference.RTOL and give this machine's classes on MNIST and random images (the bits differ:
AArch64 and x86 fuse their multiply-adds, the Cortex-A9 cannot), its multiply-adds are NEON
vector instructions (fused fmla on AArch64, vmla.f32 on ARMv7), and ARMv7's NEON, which flushes
subnormals to zero, gives way to scalar VFP where a subnormal could appear (and only there).
Skips without the cross compilers and qemu-user.

The measurement, scalar against NEON on all 10,000 MNIST test images (slow, about 2 minutes):

    LENET5_CROSS_GCC=11 python -m pytest -s -m slow tests/test_native_arm.py

prints a table of instruction counts and of images outside the tolerance; LENET5_CROSS_GCC picks
the cross gcc version (11 is the boards'), else the unversioned one."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from float_reference import float64_logits, outside_tolerance, worst_relative_error

from lenet5_pynq import native, weights
from lenet5_pynq.backends.cpu import FloatBackend, _pack_for_c
from lenet5_pynq.native import cross

IMAGES = 500  # MNIST test images compared, with cross.random_images(100)
INSTALL = "apt-get install gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu qemu-user"
GCC = os.environ.get("LENET5_CROSS_GCC") or None


def _needed(arch: str) -> cross.Target:
    target = cross.TARGETS[arch]
    absent = cross.missing(target, GCC)
    if absent:
        pytest.skip(f"{arch}: not on PATH: {', '.join(absent)} ({INSTALL})")
    return target


@pytest.fixture(scope="module", params=sorted(cross.TARGETS))
def target(request):
    return _needed(request.param)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cross")


@pytest.fixture(scope="module")
def built(workdir):
    """build(target, variant, neon_check=True), each built once."""
    done = {}

    def build(target, variant, neon_check=True):
        key = (target.arch, variant, neon_check)
        if key not in done:
            done[key] = cross.build(target, variant, workdir, GCC, neon_check=neon_check)
        return done[key]

    return build


@pytest.fixture(scope="module")
def shipped(workdir):
    params = weights.load()[0]
    return params, cross.write_params(_pack_for_c(params), workdir / "params")


def _agrees(logits, params, images):
    """Within the tolerance of the float64 reference, and this machine's classes."""
    reference = float64_logits(params, images)
    assert outside_tolerance(logits, reference) == 0, worst_relative_error(logits, reference)
    here = FloatBackend(params=params, engine="c").logits(images)
    assert np.array_equal(logits.argmax(axis=1), here.argmax(axis=1))


def test_neon_build_agrees_with_float64_and_this_machine(target, built, shipped, mnist_test):
    params, params_file = shipped
    images = np.concatenate([mnist_test[0][:IMAGES], cross.random_images(100)])
    logits, _ = cross.run(target, built(target, "neon"), params_file, images)
    _agrees(logits, params, images)


def test_neon_does_the_multiply_adds_fused_where_the_core_can(target, built):
    neon = cross.tally(cross.disassembly(target, built(target, "neon").with_suffix(".o")))
    scalar = cross.static_counts(target, built(target, "scalar").with_suffix(".o"))
    assert scalar["vector"] == scalar["fused vector"] == 0, scalar
    if target.arch == "aarch64":  # fmla v.4s: NEON, fused
        assert neon["fused vector"] > 10 * neon["vector"], neon
    else:  # the Cortex-A9 has no fused multiply-add; nothing else on NEON
        assert neon["vector"] > 0 and neon["fused"] == 0 and scalar["fused"] == 0, neon
        disassembly = cross.disassembly(target, built(target, "neon").with_suffix(".o"))
        # a flushing compare or add could differ from IEEE
        assert {m for m, operand in disassembly if ".f32" in m and operand[:1] in "qd"} == {"vmla.f32"}


def test_clang_builds_armv7_without_neon(workdir):
    """clang compiles float vectors to NEON whatever the source says, so on ARMv7 it gets VFP
    only (`native.target_flags`), and float_net.c refuses clang with NEON."""
    target = _needed("armv7")
    if shutil.which("clang") is None:
        pytest.skip("no clang")
    cmd = [
        "clang",
        "--target=arm-linux-gnueabihf",
        "-mfloat-abi=hard",
        f"-mcpu={target.cpu}",
        "-O3",
        "-std=c99",
        *(f"-D{k}={v}" for k, v in native.network_defines().items()),
        "-c",
        str(cross.KERNEL),
    ]
    obj = workdir / "clang.o"
    built = subprocess.run(
        [*cmd, *native.target_flags("armv7", neon=True, clang=True), "-o", str(obj)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-800:]
    assert cross.static_counts(target, obj)["vector"] == 0
    refused = subprocess.run([*cmd, "-mfpu=neon", "-o", str(obj)], capture_output=True, text=True)
    assert refused.returncode != 0 and "flushes subnormals" in refused.stderr


def test_neon_runs_the_layers_on_the_shipped_weights(target, built, shipped, mnist_test, workdir):
    """Executed, not just compiled: NEON does the bulk (fused on AArch64).  On ARMv7 the subnormal
    check sends no layer to scalar VFP: the same instructions run as without the check."""
    plugin = cross.build_plugin(workdir)
    images = np.concatenate([mnist_test[0][:20], cross.random_images(5)])
    checks = (True, False) if target.arch == "armv7" else (True,)
    counts = {
        check: cross.tally(cross.run(target, built(target, "neon", check), shipped[1], images, plugin)[1])
        for check in checks
    }
    executed = counts[True]
    if target.arch == "aarch64":
        assert executed["fused vector"] > 10 * (executed["scalar"] + executed["fused"] - executed["fused vector"]), (
            counts
        )
    else:
        assert executed["vector"] > 10 * executed["scalar"] and executed["fused"] == 0, counts
    if target.arch == "armv7":
        assert (counts[True]["vector"], counts[True]["scalar"]) == (counts[False]["vector"], counts[False]["scalar"])


def test_armv7_falls_back_to_vfp_where_neon_would_flush_a_subnormal(built, workdir, mnist_test):
    target = _needed("armv7")
    tiny = cross.subnormal_params(weights.load()[0])
    params_file = cross.write_params(_pack_for_c(tiny), workdir / "subnormal")
    images = mnist_test[0][:50]
    expected = FloatBackend(params=tiny, engine="c").logits(images)
    assert np.all(expected.any(axis=1))  # tiny logits, not zeros
    checked = cross.run(target, built(target, "neon"), params_file, images)[0]
    unchecked = cross.run(target, built(target, "neon", neon_check=False), params_file, images)[0]
    reference = float64_logits(tiny, images)
    assert outside_tolerance(checked, reference) == 0, worst_relative_error(checked, reference)
    assert outside_tolerance(unchecked, reference) == len(images)  # what the check is for


def test_scalar_builds_agree_too(target, built, shipped, mnist_test):
    params, params_file = shipped
    images = mnist_test[0][:100]
    logits, _ = cross.run(target, built(target, "scalar"), params_file, images)
    _agrees(logits, params, images)


@pytest.mark.slow
def test_measure_scalar_against_neon_on_all_test_images(built, workdir, mnist_test):
    """Every build of every target: static and executed instruction counts (per image from 100
    and 200 images; per call), and images outside the float64 tolerance on 10,000 MNIST, 1,003
    random and 100 subnormal-making images, which must all be none (and all for ARMv7 NEON
    without the check), with this machine's classes on MNIST."""
    targets = [cross.TARGETS[a] for a in sorted(cross.TARGETS) if not cross.missing(cross.TARGETS[a], GCC)]
    if not targets:
        pytest.skip(f"no cross toolchain with qemu ({INSTALL})")
    shipped = weights.load()[0]
    weight_sets = {"shipped": shipped, "subnormal": cross.subnormal_params(shipped)}
    sets = {
        "MNIST": ("shipped", mnist_test[0]),
        "random": ("shipped", cross.random_images(1000)),
        "subnormal": ("subnormal", mnist_test[0][:100]),
    }  # name: (weights, images)
    files = {name: cross.write_params(_pack_for_c(p), workdir / f"all-{name}") for name, p in weight_sets.items()}
    expected = {name: float64_logits(weight_sets[w], images) for name, (w, images) in sets.items()}
    here_classes = FloatBackend(params=shipped, engine="c").predict(mnist_test[0]).classes
    plugin = cross.build_plugin(workdir)

    def differ(target, exe, names):
        out = {}
        for name in names:
            logits = cross.run(target, exe, files[sets[name][0]], sets[name][1])[0]
            out[name] = [outside_tolerance(logits, expected[name]), len(expected[name])]
            if name == "MNIST":
                assert np.array_equal(logits.argmax(axis=1), here_classes), (target.arch, exe.name)
        return out

    rows = []
    for target in targets:
        for variant in cross.VARIANTS:
            exe = built(target, variant)
            rows.append(
                {
                    "target": target.arch,
                    "build": variant,
                    "static": cross.static_counts(target, exe.with_suffix(".o")),
                    "dynamic": cross.dynamic_counts(target, exe, files["shipped"], mnist_test[0][:100], plugin),
                    "differing": differ(target, exe, sets),
                }
            )
        if target.arch == "armv7":
            rows.append(
                {
                    "target": target.arch,
                    "build": "neon, no subnormal check",
                    "differing": differ(target, built(target, "neon", False), ["subnormal"]),
                }
            )
    print(f"\ncross gcc {GCC or '(unversioned)'}\n{cross.table(rows)}")
    for row in rows:
        unchecked = row["build"] == "neon, no subnormal check"
        assert all((d == n) if unchecked else (d == 0) for d, n in row["differing"].values()), row
        if not unchecked and row["target"] == "armv7":
            assert row["static"]["fused"] == row["dynamic"]["fused per image"] == 0, row


def test_flags_by_target(monkeypatch):
    """No target fuses unless asked (float_net.c is); 32-bit ARM asks for NEON where the processor
    has it, and never with clang."""
    off = "-ffp-contract=off"
    assert native.target_flags("x86_64", fused=True) == ["-ffp-contract=fast"]
    assert native.target_flags("armv7", neon=True, fused=True) == ["-ffp-contract=fast", "-mfpu=neon"]
    assert native.target_flags("x86_64") == native.target_flags("aarch64", neon=True) == [off]
    assert native.target_flags("armv7", neon=True) == [off, "-mfpu=neon"]
    assert native.target_flags("armv7", neon=False) == [off]
    assert native.target_flags("armv7", neon=True, clang=True) == [off, "-mfpu=vfpv3-d16"]
    import platform

    for machine, maxsize, arch in (
        ("armv7l", 2**31 - 1, "armv7"),
        ("aarch64", 2**31 - 1, "armv7"),
        ("aarch64", 2**63 - 1, "aarch64"),
        ("x86_64", 2**63 - 1, "x86_64"),
    ):
        monkeypatch.setattr(platform, "machine", lambda machine=machine: machine)
        monkeypatch.setattr(native.sys, "maxsize", maxsize)
        assert native.target_arch() == arch, machine


# ------------------------------------------------------------ the fixed-point kernel (issue 14)
@pytest.mark.parametrize("variant", cross.VARIANTS)
def test_fixed_kernel_matches_the_golden_model_bit_for_bit(target, variant, workdir, mnist_test):
    """native/fixed_net.c as the board builds it (NEON intrinsics) and without NEON (its portable
    C): raw logits identical to the numpy golden model, this machine's reference."""
    from lenet5_pynq import golden
    from lenet5_pynq.backends.cpu import GoldenBackend, _pack_fixed_for_c, fixed_defines

    backend = GoldenBackend(engine="numpy")
    params = cross.write_fixed_params(_pack_fixed_for_c(backend.layers), workdir / "fixed-params")
    exe = cross.build_fixed(target, variant, workdir, fixed_defines(backend.spec), GCC)
    images = np.concatenate([mnist_test[0][:IMAGES], cross.random_images(100)])
    assert np.array_equal(cross.run_fixed(target, exe, params, images), golden.predict_raw(images, backend.layers)[1])
    multiplies = cross.neon_integer_multiplies(target, exe.with_suffix(".o"))
    assert multiplies > 0 if variant == "neon" else multiplies == 0, multiplies
