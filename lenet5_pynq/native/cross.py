"""The float kernel cross-built for the boards' ARM cores and run under qemu-user (issue 12):
builds, runs, and instruction counts, for tests/test_native_arm.py, which compares the logits
with a float64 reference and this machine's build within a stated tolerance (the multiply-adds
are fused where the target has FMA, so the bits differ between targets) and measures scalar
against NEON builds.  The counts are instructions executed under emulation, not board timings.

Needs, on Debian or Ubuntu, gcc-arm-linux-gnueabihf and gcc-aarch64-linux-gnu (or their -11
packages, the boards' gcc) and qemu-user; the programs are linked statically, so no target
libraries are needed at run time.  `missing` names what is absent.

What runs: float_net_driver.c (the kernel, unchanged, behind a main that reads files), compiled
with the flags `native.target_flags` gives the board (fused, as for float_net.c), except
-mcpu=<the board's core> for -march=native, and linked with -pthread for the kernels' worker
pool (work_pool.h; the driver's optional THREADS argument, default 1: the arithmetic of an
image does not depend on the thread).  qemu emulates ARMv7 NEON's flushing of subnormals to zero, so agreement
under qemu covers it.
Dynamic counts come from qemu_insn_counts.c, a TCG plugin that counts every executed
instruction by mnemonic and operand kind; static counts from the cross objdump of the kernel alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import network
from . import HERE, network_defines, target_flags

DRIVER = HERE / "float_net_driver.c"
KERNEL = HERE / "float_net.c"
PLUGIN = HERE / "qemu_insn_counts.c"


@dataclass(frozen=True)
class Target:
    arch: str  # as native.target_arch() names it on the board
    triplet: str  # the cross toolchain's prefix
    qemu: str
    cpu: str  # the board's core: -mcpu= and qemu's -cpu
    boards: str
    scalar: tuple[str, ...]  # the build without NEON float arithmetic
    scalar_means: str


TARGETS = {
    "armv7": Target(
        "armv7",
        "arm-linux-gnueabihf",
        "qemu-arm",
        "cortex-a9",
        "PYNQ-Z2 (Zynq-7020)",
        ("-mfpu=vfpv3-d16",),
        "-mfpu=vfpv3-d16: no NEON, the kernel as the board built it before issue 12",
    ),
    "aarch64": Target(
        "aarch64",
        "aarch64-linux-gnu",
        "qemu-aarch64",
        "cortex-a53",
        "ZCU104, KV260",
        ("+nosimd",),
        "-mcpu=cortex-a53+nosimd: no NEON at all, a reference point only",
    ),
}
VARIANTS = ("scalar", "neon")


def compiler(target: Target, version: str | None = None) -> str:
    return f"{target.triplet}-gcc" + (f"-{version}" if version else "")


def missing(target: Target, version: str | None = None) -> list[str]:
    """The programs this target needs that are not on PATH (the host cc builds the plugin)."""
    needed = [compiler(target, version), f"{target.triplet}-objdump", target.qemu, "cc"]
    return [tool for tool in needed if shutil.which(tool) is None]


def variant_flags(target: Target, variant: str, neon_check: bool = True) -> list[str]:
    """-mcpu and the instruction-choosing flags of a build: "neon" as `native.build` compiles on
    the board, "scalar" without NEON float arithmetic (`Target.scalar_means`).  `neon_check=False`
    drops the subnormal check of ARMv7 NEON (float_net.c's layer_is_normal), to show it matters."""
    if variant == "neon":
        flags = [f"-mcpu={target.cpu}", *target_flags(target.arch, neon=True, fused=True)]
    elif variant == "scalar":
        cpu = target.cpu + "".join(f for f in target.scalar if f.startswith("+"))
        flags = [
            f"-mcpu={cpu}",
            *target_flags(target.arch, neon=False, fused=True),
            *(f for f in target.scalar if not f.startswith("+")),
        ]
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    return flags + ([] if neon_check else ["-DNEON_SUBNORMAL_CHECK=0"])


def _compile(cmd: list[str]) -> None:
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{run.stderr.strip()}")


def build(target: Target, variant: str, out_dir: Path, version: str | None = None, neon_check: bool = True) -> Path:
    """The statically linked driver for `target`; the kernel's object beside it (for objdump)."""
    defines = [f"-D{k}={v}" for k, v in network_defines().items()]
    stem = f"{target.arch}-{variant}{'' if neon_check else '-unchecked'}"
    base = [compiler(target, version), "-O3", "-std=c99", "-pthread", *variant_flags(target, variant, neon_check)]
    base += defines
    exe = Path(out_dir) / stem
    _compile([*base, "-static", str(DRIVER), "-o", str(exe)])
    _compile([*base, "-c", str(KERNEL), "-o", str(exe.with_suffix(".o"))])
    return exe


def build_plugin(out_dir: Path) -> Path:
    plugin = Path(out_dir) / "qemu_insn_counts.so"
    _compile(["cc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", str(PLUGIN), "-o", str(plugin)])
    return plugin


def write_params(packed: list[np.ndarray], path: Path) -> Path:
    """The kernel's ten arrays (Keras's layouts, backends/cpu.py's _pack_for_c) back to back."""
    Path(path).write_bytes(b"".join(np.ascontiguousarray(a, np.float32).tobytes() for a in packed))
    return Path(path)


def run(target: Target, exe: Path, params: Path, images: np.ndarray, plugin: Path | None = None):
    """(logits, counts): the driver's logits under qemu for uint8 `images` [n, 28, 28], and with a
    plugin a Counter of executed instructions keyed (mnemonic, operand kind), else None."""
    with tempfile.TemporaryDirectory() as tmp:
        image_file, logit_file, log = Path(tmp) / "images", Path(tmp) / "logits", Path(tmp) / "counts"
        image_file.write_bytes(np.ascontiguousarray(images, np.uint8).tobytes())
        cmd = [target.qemu, "-cpu", target.cpu]
        if plugin is not None:
            cmd += ["-plugin", str(plugin), "-d", "plugin", "-D", str(log)]
        result = subprocess.run(
            [*cmd, str(exe), str(params), str(image_file), str(logit_file)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if result.returncode:
            raise RuntimeError(f"{exe.name} under {target.qemu} failed ({result.returncode}): {result.stderr.strip()}")
        logits = np.fromfile(logit_file, np.float32).reshape(len(images), network.NUM_CLASSES)
        counts = None
        if plugin is not None:
            counts = Counter()
            for line in log.read_text().splitlines():
                n, mnemonic, operand = (line.split("\t") + ["", ""])[:3]
                counts[mnemonic, operand] += int(n)
        return logits, counts


# --------------------------------------------------------------------- what an instruction is
_MULADD_A32 = re.compile(r"v(n?mul|add|sub|n?mla|n?mls|fn?ma|fn?ms)\.f32")
_MULADD_A64 = re.compile(r"f(n?mul|add|sub|mla|mls|n?madd|n?msub)")
_FUSED = re.compile(r"vfn?m[as]\.f32|fml[as]|fn?madd|fn?msub")


def kind(mnemonic: str, operand: str) -> str | None:
    """ "fused", "vector" (NEON) or "scalar" for a float32 multiply or add, by its first operand
    ("fused" before the register kind: a fused vector multiply-add counts as fused), None for any
    other instruction.  `tally` counts fused vector ones apart as well."""
    if _MULADD_A32.fullmatch(mnemonic):  # ARMv7: vmla.f32 q8 or d8 is NEON, vmla.f32 s0 VFP
        vector, scalar = operand[:1] in ("q", "d"), operand == "s"
    elif _MULADD_A64.fullmatch(mnemonic):  # AArch64: fmul v0.4s is NEON, fmul s0 scalar
        vector, scalar = operand in ("v.4s", "v.2s"), operand == "s"
    else:
        return None
    if not (vector or scalar):
        return None  # double or half precision
    return "fused" if _FUSED.fullmatch(mnemonic) else "vector" if vector else "scalar"


def _operand_kind(text: str) -> str:
    """q8 -> q, v0.4s -> v.4s, s0 -> s: the first operand without its register number."""
    return re.sub(r"(?<=[a-zA-Z])\d+", "", text.split(",")[0].strip())


def tally(counts: Counter) -> dict[str, int]:
    """All instructions, and the float32 multiplies and adds by kind."""
    out = {"instructions": sum(counts.values()), "vector": 0, "scalar": 0, "fused": 0, "fused vector": 0}
    for (mnemonic, operand), n in counts.items():
        k = kind(mnemonic, operand)
        if k:
            out[k] += n
        if k == "fused" and (operand[:1] in ("q", "d") or operand in ("v.4s", "v.2s")):
            out["fused vector"] += n
    return out


def disassembly(target: Target, obj: Path) -> Counter:
    """The object's instructions, each once, keyed (mnemonic, operand kind) as the plugin keys them."""
    dump = subprocess.run(
        [f"{target.triplet}-objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    counts = Counter()
    for line in dump.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().endswith(":") and parts[0].strip()[:-1].isalnum():
            counts[parts[1].strip(), _operand_kind(parts[2]) if len(parts) > 2 else ""] += 1
    return counts


def static_counts(target: Target, obj: Path) -> dict[str, int]:
    """`tally` of the kernel object's disassembly."""
    return tally(disassembly(target, obj))


def dynamic_counts(target: Target, exe: Path, params: Path, images: np.ndarray, plugin: Path) -> dict[str, float]:
    """Instructions executed per image (from runs of n and 2n images, so the per-call costs
    cancel) and per call of the kernel (a run of n images less n images' worth and a run of none)."""
    n = len(images)
    tallies = [
        tally(run(target, exe, params, batch, plugin)[1])
        for batch in (images[:0], images, np.concatenate([images, images]))
    ]
    out = {}
    for key in tallies[0]:
        none, once, twice = (t[key] for t in tallies)
        per_image = (twice - once) / n
        out[f"{key} per image"] = per_image
        out[f"{key} per call"] = once - none - n * per_image
    return out


# ------------------------------------------------------------------------------ test inputs
def random_images(count: int, seed: int = 12) -> np.ndarray:
    """Uniform random pixels, then an empty, a full and a one-pixel image."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    edges = np.zeros((3, 28, 28), np.uint8)
    edges[1] = 255
    edges[2, 14, 14] = 1
    return np.concatenate([images, edges])


def subnormal_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights whose products and sums are subnormal: conv1 scaled by 2^-118 and no biases, so
    every activation is about 2^-118 of the shipped one (a ReLU network without biases scales
    with its input).  ARMv7 NEON would flush them; float_net.c must fall back to scalar VFP."""
    out = {k: (np.zeros_like(v) if k.endswith("/bias") else v.copy()) for k, v in params.items()}
    first = next(k for k in out if k.endswith("/kernel"))
    out[first] = (out[first].astype(np.float64) * 2.0**-118).astype(np.float32)
    return out


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """How many images' logits differ in any bit (builds of one target, or of targets that fuse
    alike, compute the same bits)."""
    return int((np.ascontiguousarray(a).view(np.uint32) != np.ascontiguousarray(b).view(np.uint32)).any(axis=1).sum())


def table(rows: list[dict]) -> str:
    """Rows of {target, build, static, dynamic, differing} as a markdown table: `static_counts`,
    `dynamic_counts` and, per image set, [images whose logits differ, images]."""
    lines = [
        "| target | build | static vector / scalar / fused | per image: instructions, vector, scalar, fused "
        "| per call | images outside the float64 tolerance |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        st, dy = row.get("static"), row.get("dynamic")
        static = f"{st['vector']} / {st['scalar']} / {st['fused']}" if st else ""
        kinds = ("instructions", "vector", "scalar", "fused")
        per_image = ", ".join(f"{dy[k + ' per image']:,.0f}" for k in kinds) if dy else ""
        per_call = f"{dy['instructions per call']:,.0f}" if dy else ""
        diff = ", ".join(f"{name} {d}/{n}" for name, (d, n) in row["differing"].items())
        lines.append(f"| {row['target']} | {row['build']} | {static} | {per_image} | {per_call} | {diff} |")
    return "\n".join(lines)


# ------------------------------------------------------------ the fixed-point kernel (issue 14)
FIXED_DRIVER = HERE / "fixed_net_driver.c"
FIXED_KERNEL = HERE / "fixed_net.c"


def build_fixed(
    target: Target, variant: str, out_dir: Path, defines: dict[str, str], version: str | None = None
) -> Path:
    """The statically linked fixed_net_driver.c for `target` with `defines` (backends/cpu.py
    `fixed_defines`), flags as `variant_flags` gives them; the kernel's object beside it."""
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    base = [compiler(target, version), "-O3", "-std=c99", "-pthread", *variant_flags(target, variant), *flags]
    exe = Path(out_dir) / f"fixed-{target.arch}-{variant}"
    _compile([*base, "-static", str(FIXED_DRIVER), "-o", str(exe)])
    _compile([*base, "-c", str(FIXED_KERNEL), "-o", str(exe.with_suffix(".o"))])
    return exe


def write_fixed_params(packed: list[np.ndarray], path: Path) -> Path:
    """The fixed kernel's ten arrays (backends/cpu.py `_pack_fixed_for_c`) back to back."""
    Path(path).write_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in packed))
    return Path(path)


def run_fixed(target: Target, exe: Path, params: Path, images: np.ndarray) -> np.ndarray:
    """The driver's raw int16 logits under qemu for uint8 `images` [n, 28, 28]."""
    with tempfile.TemporaryDirectory() as tmp:
        image_file, logit_file = Path(tmp) / "images", Path(tmp) / "logits"
        image_file.write_bytes(np.ascontiguousarray(images, np.uint8).tobytes())
        result = subprocess.run(
            [target.qemu, "-cpu", target.cpu, str(exe), str(params), str(image_file), str(logit_file)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if result.returncode:
            raise RuntimeError(f"{exe.name} under {target.qemu} failed ({result.returncode}): {result.stderr.strip()}")
        return np.fromfile(logit_file, np.int16).reshape(len(images), network.NUM_CLASSES)


def neon_integer_multiplies(target: Target, obj: Path) -> int:
    """How many NEON int16 widening multiplies (vmull.s16 on q registers, smull/smull2 on v
    registers) the object's disassembly holds: the fixed kernel's multiply-adds on NEON."""
    return sum(
        n
        for (mnemonic, operand), n in disassembly(target, obj).items()
        if (mnemonic == "vmull.s16" and operand == "q")
        or (mnemonic in ("smull", "smull2") and operand.startswith("v."))
    )
