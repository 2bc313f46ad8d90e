"""The float kernel on the boards' ARM cores (issue 12), cross-built and run under qemu-user
(lenet5_pynq.native.cross): its logits equal this machine's bit for bit on MNIST and random
images, its multiply-adds are NEON vector instructions and none is fused, and ARMv7's NEON, which
flushes subnormals to zero, gives way to scalar VFP where a subnormal could appear (and only
there).  Skips without the cross compilers and qemu-user.

The measurement, scalar against NEON on all 10,000 MNIST test images (slow, about 2 minutes):

    LENET5_CROSS_GCC=11 python -m pytest -s -m slow tests/test_native_arm.py

prints a table of instruction counts and differing images; LENET5_CROSS_GCC picks the cross gcc
version (11 is the boards'), else the unversioned one."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

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


def test_neon_build_matches_this_machine_bit_for_bit(target, built, shipped, mnist_test):
    params, params_file = shipped
    images = np.concatenate([mnist_test[0][:IMAGES], cross.random_images(100)])
    logits, _ = cross.run(target, built(target, "neon"), params_file, images)
    assert cross.differing(logits, FloatBackend(params=params, engine="c").logits(images)) == 0


def test_neon_does_the_multiply_adds_and_nothing_is_fused(target, built):
    neon = cross.disassembly(target, built(target, "neon").with_suffix(".o"))
    scalar = cross.static_counts(target, built(target, "scalar").with_suffix(".o"))
    assert cross.tally(neon)["vector"] > 0 and cross.tally(neon)["fused"] == 0, cross.tally(neon)
    assert scalar["vector"] == 0 and scalar["fused"] == 0, scalar
    if target.arch == "armv7":  # nothing else on NEON: a flushing compare or add could differ from IEEE
        assert {m for m, operand in neon if ".f32" in m and operand[:1] in "qd"} == {"vmla.f32"}


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
    """Executed, not just compiled: NEON does the bulk, nothing fused.  On ARMv7 the subnormal
    check sends no layer to scalar VFP: the same instructions run as without the check."""
    plugin = cross.build_plugin(workdir)
    images = np.concatenate([mnist_test[0][:20], cross.random_images(5)])
    checks = (True, False) if target.arch == "armv7" else (True,)
    counts = {
        check: cross.tally(cross.run(target, built(target, "neon", check), shipped[1], images, plugin)[1])
        for check in checks
    }
    assert counts[True]["vector"] > 10 * counts[True]["scalar"] and counts[True]["fused"] == 0, counts
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
    assert cross.differing(checked, expected) == 0
    assert cross.differing(unchecked, expected) == len(images)  # what the check is for


def test_scalar_builds_match_too(target, built, shipped, mnist_test):
    params, params_file = shipped
    images = mnist_test[0][:100]
    logits, _ = cross.run(target, built(target, "scalar"), params_file, images)
    assert cross.differing(logits, FloatBackend(params=params, engine="c").logits(images)) == 0


@pytest.mark.slow
def test_measure_scalar_against_neon_on_all_test_images(built, workdir, mnist_test):
    """Every build of every target: static and executed instruction counts (per image from 100
    and 200 images; per call), and differing logits on 10,000 MNIST, 1,003 random and 100
    subnormal-making images, which must all be none (and all for ARMv7 NEON without the check)."""
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
    expected = {
        name: FloatBackend(params=weight_sets[w], engine="c").logits(images) for name, (w, images) in sets.items()
    }
    plugin = cross.build_plugin(workdir)

    def differ(target, exe, names):
        return {
            name: [
                cross.differing(cross.run(target, exe, files[sets[name][0]], sets[name][1])[0], expected[name]),
                len(expected[name]),
            ]
            for name in names
        }

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
        assert unchecked or row["static"]["fused"] == row["dynamic"]["fused per image"] == 0, row


def test_flags_by_target(monkeypatch):
    """No target fuses; 32-bit ARM asks for NEON where the processor has it, and never with clang."""
    off = "-ffp-contract=off"
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
