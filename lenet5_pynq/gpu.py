"""The CUDA library (gpu_ref/): its CFFI declarations, its build, and a thin handle wrapper.

    python -m lenet5_pynq.gpu header [--check]   # write (or check) gpu_ref/generated/lenet5_shapes.h
    python -m lenet5_pynq.gpu build [--arch sm_90 ...] [--out DIR]   # nvcc; default: sm_75..sm_90 + PTX
    python -m lenet5_pynq.gpu check-header        # the cdef below matches gpu_ref/include/lenet5_gpu.h
    python -m lenet5_pynq.gpu info                # the library, the driver and the card

The library is found at $LENET5_GPU_LIB, else gpu_ref/build/liblenet5_gpu.so of this checkout.
Network sizes reach the CUDA code only through the generated header, written from
`network.layer_shapes()`; tests/test_gpu.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import network

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / "gpu_ref"
HEADER = GPU_DIR / "include" / "lenet5_gpu.h"
SHAPES_HEADER = GPU_DIR / "generated" / "lenet5_shapes.h"
SOURCES = ("launch.cu", "api.cu")
BUILD_DIR = GPU_DIR / "build"
LIB_NAME = "liblenet5_gpu.so"
ENV_LIB = "LENET5_GPU_LIB"
# Turing, Ampere (A100, consumer), Ada, Hopper; PTX of the newest for anything later.
ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90")

# A copy of the declarations between the CDEF markers of gpu_ref/include/lenet5_gpu.h, so an
# installed package needs no header; `check-header` (run by CI) fails when they differ.
CDEF = """
typedef struct lenet5_gpu lenet5_gpu;

typedef enum {
    LENET5_OK = 0,
    LENET5_ERR_INVALID_ARGUMENT = 1,
    LENET5_ERR_NO_DRIVER = 2,
    LENET5_ERR_NO_DEVICE = 3,
    LENET5_ERR_CUDA = 4,
    LENET5_ERR_OUT_OF_MEMORY = 5,
    LENET5_ERR_UNSUPPORTED = 6,
    LENET5_ERR_MODE_NOT_LOADED = 7
} lenet5_status;

typedef enum {
    LENET5_MODE_FLOAT = 0,
    LENET5_MODE_FIXED = 1
} lenet5_mode;

typedef enum {
    LENET5_AP_TRN = 0,
    LENET5_AP_TRN_ZERO = 1,
    LENET5_AP_RND = 2,
    LENET5_AP_RND_ZERO = 3,
    LENET5_AP_RND_MIN_INF = 4,
    LENET5_AP_RND_INF = 5,
    LENET5_AP_RND_CONV = 6
} lenet5_rounding;

typedef enum {
    LENET5_AP_WRAP = 0,
    LENET5_AP_SAT = 1,
    LENET5_AP_SAT_ZERO = 2,
    LENET5_AP_SAT_SYM = 3
} lenet5_saturation;

typedef enum {
    LENET5_VARIANT_AUTO = 0,
    LENET5_VARIANT_WARP = 1,
    LENET5_VARIANT_BLOCK = 2,
    LENET5_VARIANT_WARP_SMALL = 3
} lenet5_variant;

typedef struct {
    const char *name;
    int32_t is_conv;
    int32_t relu;
    int32_t fan_in;
    int32_t outputs;
    int64_t kernel_count;
    int64_t bias_count;
} lenet5_layer_info;

typedef struct {
    int32_t accum_frac_bits;
    int32_t bias_shift;
    int32_t out_width;
    int32_t out_frac_bits;
    int32_t out_signed;
    int32_t rounding;
    int32_t saturation;
} lenet5_fixed_format;

typedef struct {
    const float *kernel;
    const float *bias;
    const int16_t *kernel_raw;
    const int16_t *bias_raw;
    lenet5_fixed_format fixed;
} lenet5_layer_params;

int lenet5_gpu_num_layers(void);
int lenet5_gpu_num_classes(void);
int lenet5_gpu_image_bytes(void);
int lenet5_gpu_layer_info(int index, lenet5_layer_info *info);
int lenet5_gpu_device_count(int *count);
int lenet5_gpu_create(int device, const lenet5_layer_params *layers, int num_layers, lenet5_gpu **handle);
int lenet5_gpu_destroy(lenet5_gpu *handle);
int lenet5_gpu_device_name(const lenet5_gpu *handle, char *name, size_t size);
int lenet5_gpu_set_variant(lenet5_gpu *handle, int variant);
int lenet5_gpu_set_resident(lenet5_gpu *handle, int64_t idle_us);
int lenet5_gpu_resident_stats(const lenet5_gpu *handle, int64_t *calls, int64_t *launches, double *gpu_us);
int lenet5_gpu_infer_host(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t n,
                          int32_t *classes, void *logits);
int lenet5_gpu_infer_device(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t n,
                            int32_t *classes, void *logits, void *stream);
int lenet5_gpu_time_device(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t sets,
                           int64_t batch, int calls, int warmup, int repeats, float *ms_per_call);
const char *lenet5_gpu_status_string(int status);
const char *lenet5_gpu_last_error(void);
"""

MODES = {"float": 0, "fixed": 1}
_LOGIT_DTYPES = {0: np.dtype(np.float32), 1: np.dtype(np.int16)}
_U8, _I32 = np.dtype(np.uint8), np.dtype(np.int32)
_KEEP_POINTERS = 8  # infer_into keeps the pointers of batches up to this size (the resident path's)
VARIANTS = {"auto": 0, "warp": 1, "block": 2, "warp-small": 3}


class GpuLibraryMissing(RuntimeError):
    """The shared library is not built (or cannot be loaded)."""


class GpuError(RuntimeError):
    """A library call returned a non-zero status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------- header checks


def _tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.findall(r"[A-Za-z_]\w*|\d+|\S", text)


def header_cdef(path: Path = HEADER) -> str:
    """The declarations between the CDEF markers of the C header."""
    text = path.read_text()
    m = re.search(r"/\* BEGIN CDEF \*/(.*?)/\* END CDEF \*/", text, flags=re.S)
    if not m:
        raise ValueError(f"{path}: no /* BEGIN CDEF */ ... /* END CDEF */ section")
    body = m.group(1)
    if re.search(r"^\s*#", body, flags=re.M):
        raise ValueError(f"{path}: preprocessor lines inside the CDEF section")
    return body


def check_header(path: Path = HEADER) -> list[str]:
    """Problems between the header's declarations and CDEF (empty when they match)."""
    problems = []
    body = header_cdef(path)
    ours, theirs = _tokens(CDEF), _tokens(body)
    if ours != theirs:
        for i, (a, b) in enumerate(zip(ours + [""] * len(theirs), theirs + [""] * len(ours))):
            if a != b:
                context = " ".join(theirs[max(0, i - 8) : i + 8])
                problems.append(f"cdef and {path.name} differ at token {i}: cdef {a!r}, header {b!r} (header: ...{context}...)")
                break
    try:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(body)
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        problems.append(f"cffi cannot parse {path.name}: {type(e).__name__}: {e}")
    return problems


def _ident(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if not ident[0].isdigit() else "_" + ident


def shapes_header() -> str:
    """gpu_ref/generated/lenet5_shapes.h, from network.layer_shapes()."""
    shapes = network.layer_shapes()
    out = [
        "/* Generated by `python -m lenet5_pynq.gpu header` from lenet5_pynq/network.py: do not edit.",
        " * tests/test_gpu.py fails when this file is stale. */",
        "#ifndef LENET5_SHAPES_H",
        "#define LENET5_SHAPES_H",
        "",
        "namespace lenet5 {",
        "namespace shapes {",
        "",
        f"constexpr int kInputH = {network.INPUT_HEIGHT};",
        f"constexpr int kInputW = {network.INPUT_WIDTH};",
        f"constexpr int kInputC = {network.INPUT_CHANNELS};",
        f"constexpr int kNumClasses = {network.NUM_CLASSES};",
        f"constexpr int kPixelFracBits = {network.PIXEL_FRAC_BITS};",
        f"constexpr int kNumLayers = {len(shapes)};",
        "",
    ]
    for i, s in enumerate(shapes):
        layer = s.layer
        outputs = int(np.prod(s.out_shape))
        common = [
            f"    static constexpr int index = {i};",
            f'    static constexpr const char* name = "{layer.name}";',
            f"    static constexpr bool is_conv = {'true' if isinstance(layer, network.Conv) else 'false'};",
            f"    static constexpr bool relu = {'true' if layer.relu else 'false'};",
            f"    static constexpr int fan_in = {s.fan_in};",
            f"    static constexpr int outputs = {outputs};  // per image, after pooling",
            f"    static constexpr int kernel_count = {int(np.prod(s.weight_shape))};",
            f"    static constexpr int bias_count = {int(np.prod(s.bias_shape))};",
        ]
        if isinstance(layer, network.Conv):
            h, w, c = s.in_shape
            ch, cw, _ = s.conv_shape
            oh, ow, oc = s.out_shape
            body = [
                f"    static constexpr int in_h = {h}, in_w = {w}, in_c = {c};",
                f"    static constexpr int kernel = {layer.kernel};",
                f"    static constexpr int conv_h = {ch}, conv_w = {cw};",
                f"    static constexpr int pool = {layer.pool};",
                f"    static constexpr int out_h = {oh}, out_w = {ow}, out_c = {oc};",
            ]
            kind = "convolution, valid padding, stride 1; then ReLU and max-pool (window = stride = pool)"
        else:
            body = [f"    static constexpr int in = {s.fan_in}, out = {layer.units};"]
            kind = "dense; input = channels-last flattening of the previous output"
        out += [f"// {layer.name}: {kind}", f"struct {_ident(layer.name)} {{", *common, *body, "};", ""]
    for i, s in enumerate(shapes):
        out.append(f"using Layer{i} = {_ident(s.layer.name)};")
    out += ["", "}  // namespace shapes", "}  // namespace lenet5", "", "#endif  // LENET5_SHAPES_H", ""]
    return "\n".join(out)


def write_shapes_header(check: bool = False) -> bool:
    """Write the generated header; with check, only report whether it is up to date."""
    text = shapes_header()
    current = SHAPES_HEADER.read_text() if SHAPES_HEADER.is_file() else None
    if check:
        return current == text
    if current != text:
        SHAPES_HEADER.parent.mkdir(parents=True, exist_ok=True)
        SHAPES_HEADER.write_text(text)
    return True


# ----------------------------------------------------------------------------- build


def nvcc_path() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return None


def nvcc_command(out: Path, archs=ARCHS, nvcc: str | None = None, extra=()) -> list[str]:
    nvcc = nvcc or nvcc_path()
    if nvcc is None:
        raise FileNotFoundError("nvcc not found (PATH, $CUDA_HOME, /usr/local/cuda)")
    gencode = []
    for arch in archs:
        num = arch.removeprefix("sm_")
        gencode.append(f"-gencode=arch=compute_{num},code=sm_{num}")
    newest = max(archs, key=lambda a: int(a.removeprefix("sm_"))).removeprefix("sm_")
    gencode.append(f"-gencode=arch=compute_{newest},code=compute_{newest}")  # PTX for later cards
    return [
        nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden",
        "-cudart", "static", "-lineinfo", "--resource-usage",
        f"-I{GPU_DIR / 'include'}", f"-I{GPU_DIR / 'generated'}", f"-I{GPU_DIR / 'src'}",
        *gencode, *extra, *[str(GPU_DIR / "src" / s) for s in SOURCES], "-o", str(out),
    ]  # fmt: skip


def build(out_dir: Path = BUILD_DIR, archs=ARCHS, verbose: bool = True, extra=(), regenerate: bool = True) -> Path:
    """Regenerate the shapes header (unless told not to) and compile the library; returns its path."""
    if regenerate:
        write_shapes_header()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / LIB_NAME
    cmd = nvcc_command(out, archs, extra=extra)
    if verbose:
        print(" ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if verbose or proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"nvcc failed with status {proc.returncode}")
    return out


# ----------------------------------------------------------------------------- loading

_LIB = None


def library_path() -> Path:
    env = os.environ.get(ENV_LIB)
    return Path(env) if env else BUILD_DIR / LIB_NAME


def load_library():
    """(ffi, lib), loaded once; GpuLibraryMissing says how to build it."""
    global _LIB
    if _LIB is None:
        path = library_path()
        if not path.is_file():
            raise GpuLibraryMissing(
                f"CUDA library {path} is not built: run `python -m lenet5_pynq.gpu build` (needs nvcc) "
                f"or set ${ENV_LIB}"
            )
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        try:
            lib = ffi.dlopen(str(path))
        except OSError as e:
            raise GpuLibraryMissing(f"cannot load {path}: {e}") from None
        _LIB = (ffi, lib)
    return _LIB


def _check(lib, ffi, status: int, what: str) -> None:
    if status != 0:
        detail = ffi.string(lib.lenet5_gpu_last_error()).decode(errors="replace")
        kind = ffi.string(lib.lenet5_gpu_status_string(status)).decode()
        raise GpuError(status, f"{what}: {kind}: {detail}")


def device_count() -> int:
    """CUDA devices the library sees; raises GpuError (status NO_DRIVER / NO_DEVICE) when none."""
    ffi, lib = load_library()
    count = ffi.new("int *")
    _check(lib, ffi, lib.lenet5_gpu_device_count(count), "device count")
    return count[0]


def _fixed_format(lib, layer) -> dict:
    f = layer.formats
    if not f.output.signed:
        raise ValueError(f"{layer.name}: the GPU fixed mode needs a signed output format")
    return dict(
        accum_frac_bits=f.accum.frac_bits,
        bias_shift=f.bias_shift,
        out_width=f.output.width,
        out_frac_bits=f.output.frac_bits,
        out_signed=1,
        rounding=getattr(lib, "LENET5_" + f.output.rounding),
        saturation=getattr(lib, "LENET5_" + f.output.saturation),
    )


def _as_int16(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size and (values.min() < -(1 << 15) or values.max() >= (1 << 15)):
        raise ValueError(f"{what}: raw values do not fit int16 (the GPU fixed mode takes formats of at most 16 bits)")
    return np.ascontiguousarray(values, dtype=np.int16)


class GpuNetwork:
    """A library handle: the weights on one GPU, in float mode, fixed mode or both.

    params: float arrays keyed "layer/kernel", "layer/bias" (Keras layout), or None;
    quantized: `fixedspec.QuantizedLayer`s (raw integers and formats), or None.
    """

    def __init__(self, params: dict | None, quantized: list | None, device: int = 0):
        self.ffi, self.lib = load_library()
        ffi, lib = self.ffi, self.lib
        if params is None and quantized is None:
            raise ValueError("give float params, quantized layers, or both")
        n_layers = lib.lenet5_gpu_num_layers()
        if n_layers != len(network.LAYERS):
            raise GpuError(1, f"library built for {n_layers} layers, network has {len(network.LAYERS)}: rebuild it")
        self.num_classes = lib.lenet5_gpu_num_classes()
        self.image_bytes = lib.lenet5_gpu_image_bytes()
        structs = ffi.new("lenet5_layer_params[]", n_layers)
        keep = []  # arrays referenced by the structs until create() has copied them
        info = ffi.new("lenet5_layer_info *")
        for i, layer in enumerate(network.LAYERS):
            _check(lib, ffi, lib.lenet5_gpu_layer_info(i, info), "layer info")
            name = ffi.string(info.name).decode()
            if name != layer.name:
                raise GpuError(1, f"library layer {i} is {name!r}, network says {layer.name!r}: rebuild it")
            sizes = {"kernel": info.kernel_count, "bias": info.bias_count}
            s = structs[i]
            if params is not None:
                for part, count in sizes.items():
                    arr = np.ascontiguousarray(params[f"{layer.name}/{part}"], dtype=np.float32)
                    if arr.size != count:
                        raise ValueError(f"{layer.name}/{part}: {arr.size} values, library expects {count}")
                    keep.append(arr)
                    setattr(s, part, ffi.cast("const float *", ffi.from_buffer(arr)))
            if quantized is not None:
                q = quantized[i]
                if q.name != layer.name:
                    raise ValueError(f"quantized layer {i} is {q.name!r}, expected {layer.name!r}")
                for part, values, count in (("kernel_raw", q.kernel, sizes["kernel"]), ("bias_raw", q.bias, sizes["bias"])):
                    arr = _as_int16(values, f"{layer.name} {part}")
                    if arr.size != count:
                        raise ValueError(f"{layer.name} {part}: {arr.size} values, library expects {count}")
                    keep.append(arr)
                    setattr(s, part, ffi.cast("const int16_t *", ffi.from_buffer(arr)))
                for key, value in _fixed_format(lib, q).items():
                    setattr(s.fixed, key, value)
        handle = ffi.new("lenet5_gpu **")
        _check(lib, ffi, lib.lenet5_gpu_create(device, structs, n_layers, handle), "create")
        self._handle = ffi.gc(handle[0], lib.lenet5_gpu_destroy)
        self._last = None  # infer_into's last arrays and their pointers
        name = ffi.new("char[256]")
        _check(lib, ffi, lib.lenet5_gpu_device_name(self._handle, name, 256), "device name")
        self.device_name = ffi.string(name).decode(errors="replace")
        del keep

    def close(self) -> None:
        self._last = None
        if self._handle is not None:
            self.ffi.release(self._handle)
            self._handle = None

    def set_variant(self, variant: str) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
        _check(self.lib, self.ffi, self.lib.lenet5_gpu_set_variant(self._handle, VARIANTS[variant]), "set variant")

    @staticmethod
    def _mode(mode: str) -> int:
        if mode not in MODES:
            raise ValueError(f"mode must be 'float' or 'fixed', not {mode!r}")
        return MODES[mode]

    def logits_dtype(self, mode: str):
        return _LOGIT_DTYPES[self._mode(mode)]

    def infer_into(self, images: np.ndarray, mode: str, classes: np.ndarray | None, logits: np.ndarray | None) -> None:
        """Host arrays in and out: images uint8[n, 28, 28] (C-contiguous), classes int32[n],
        logits float32/int16 [n, 10]; either output may be None.  (Kept lean: this is the
        one-image latency path.  `ffi.from_buffer` refuses arrays that are not C-contiguous, and
        read-only outputs.  For batches of at most 8 images the pointers to the last arrays are
        kept, with references to them, and reused while the same arrays come again: numpy cannot
        resize them meanwhile.)"""
        last = self._last
        if (
            last is not None
            and images is last[0]
            and classes is last[1]
            and logits is last[2]
            and mode == last[3]
            and len(images) == last[4]
        ):
            status = self.lib.lenet5_gpu_infer_host(self._handle, last[5], last[6], last[4], last[7], last[8])
            if status:
                _check(self.lib, self.ffi, status, "infer")
            return
        m = MODES.get(mode)
        if m is None:
            raise ValueError(f"mode must be 'float' or 'fixed', not {mode!r}")
        handle = self._handle
        if handle is None:
            raise ValueError("network is closed")
        n = len(images)
        dt = images.dtype
        if (dt is not _U8 and dt != _U8) or images.size != n * self.image_bytes:
            raise ValueError(f"images must be C-contiguous uint8 of {self.image_bytes} bytes each")
        ffi = self.ffi
        try:
            img_ptr = ffi.from_buffer("uint8_t[]", images) if n else ffi.NULL
        except (ValueError, TypeError, BufferError) as e:
            raise ValueError(f"images must be C-contiguous uint8 of {self.image_bytes} bytes each ({e})") from None
        cls_ptr = log_ptr = ffi.NULL
        if classes is not None:
            dt = classes.dtype
            if (dt is not _I32 and dt != _I32) or classes.shape != (n,):
                raise ValueError("classes must be C-contiguous int32[n]")
            try:
                cls_ptr = ffi.from_buffer("int32_t[]", classes, require_writable=True)
            except (ValueError, TypeError, BufferError) as e:
                raise ValueError(f"classes must be writable, C-contiguous int32[n] ({e})") from None
        if logits is not None:
            want = _LOGIT_DTYPES[m]
            dt = logits.dtype
            if (dt is not want and dt != want) or logits.shape != (n, self.num_classes):
                raise ValueError(f"logits must be C-contiguous {want}[n, {self.num_classes}]")
            try:
                log_ptr = ffi.from_buffer(logits, require_writable=True)
            except (ValueError, TypeError, BufferError) as e:
                raise ValueError(f"logits must be writable, C-contiguous {want}[n, {self.num_classes}] ({e})") from None
        self._last = (images, classes, logits, mode, n, m, img_ptr, cls_ptr, log_ptr) if 0 < n <= _KEEP_POINTERS else None
        status = self.lib.lenet5_gpu_infer_host(handle, m, img_ptr, n, cls_ptr, log_ptr)
        if status:
            _check(self.lib, ffi, status, "infer")

    def set_resident(self, idle_us: int) -> None:
        """Batches of 1..8 host images go to a kernel that stays on the GPU between calls and ends
        after `idle_us` microseconds without one; 0: a kernel launch per call (see
        lenet5_gpu_set_resident in gpu_ref/include/lenet5_gpu.h)."""
        _check(self.lib, self.ffi, self.lib.lenet5_gpu_set_resident(self._handle, int(idle_us)), "set resident")

    def resident_stats(self) -> tuple[int, int, float]:
        """(calls answered by the resident kernel, resident kernels launched, mean microseconds
        on the GPU clock from the kernel seeing a call to its answer) so far."""
        calls, launches, gpu_us = self.ffi.new("int64_t *"), self.ffi.new("int64_t *"), self.ffi.new("double *")
        _check(
            self.lib, self.ffi, self.lib.lenet5_gpu_resident_stats(self._handle, calls, launches, gpu_us), "resident stats"
        )
        return int(calls[0]), int(launches[0]), float(gpu_us[0])

    def infer(self, images: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        classes = np.empty(n, np.int32)
        logits = np.empty((n, self.num_classes), self.logits_dtype(mode))
        self.infer_into(images, mode, classes, logits)
        return classes, logits

    def infer_device(self, images_ptr: int, n: int, mode: str, classes_ptr: int, logits_ptr: int, stream: int = 0) -> None:
        """Device pointers (integers, e.g. tensor.data_ptr()); asynchronous on `stream`."""
        ffi = self.ffi
        _check(
            self.lib, ffi,
            self.lib.lenet5_gpu_infer_device(
                self._handle, self._mode(mode), ffi.cast("const uint8_t *", images_ptr), n,
                ffi.cast("int32_t *", classes_ptr), ffi.cast("void *", logits_ptr), ffi.cast("void *", stream),
            ),
            "infer_device",
        )  # fmt: skip

    def time_device(self, images: np.ndarray, batch: int, mode: str, calls: int, warmup: int, repeats: int) -> np.ndarray:
        """Seconds per device-to-device call for each repeat; images holds the rotating sets."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if len(images) % batch:
            raise ValueError("images must hold a whole number of batches")
        ffi = self.ffi
        out = np.empty(repeats, np.float32)
        _check(
            self.lib, ffi,
            self.lib.lenet5_gpu_time_device(
                self._handle, self._mode(mode), ffi.cast("const uint8_t *", ffi.from_buffer(images)),
                len(images) // batch, batch, calls, warmup, repeats,
                ffi.cast("float *", ffi.from_buffer(out, require_writable=True)),
            ),
            "time_device",
        )  # fmt: skip
        return out.astype(np.float64) * 1e-3


# ----------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lenet5_pynq.gpu", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("header", help="write gpu_ref/generated/lenet5_shapes.h from network.py")
    h.add_argument("--check", action="store_true", help="only check that it is up to date")
    b = sub.add_parser("build", help="compile gpu_ref/ with nvcc")
    b.add_argument("--arch", action="append", help=f"sm_XY (repeatable); default {' '.join(ARCHS)}")
    b.add_argument("--out", type=Path, default=BUILD_DIR)
    sub.add_parser("check-header", help="check that the CFFI declarations match the C header")
    sub.add_parser("info", help="library, driver and card")
    args = ap.parse_args(argv)
    if args.cmd == "header":
        if args.check:
            ok = write_shapes_header(check=True)
            print(f"{SHAPES_HEADER}: {'up to date' if ok else 'STALE: run python -m lenet5_pynq.gpu header'}")
            return 0 if ok else 1
        write_shapes_header()
        print(SHAPES_HEADER)
        return 0
    if args.cmd == "build":
        try:
            print(build(args.out, tuple(args.arch) if args.arch else ARCHS))
        except (FileNotFoundError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "check-header":
        problems = check_header()
        if not write_shapes_header(check=True):
            problems.append(f"{SHAPES_HEADER} is stale: run python -m lenet5_pynq.gpu header")
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if not problems:
            print(f"{HEADER.name}: CFFI declarations match; {SHAPES_HEADER.name} up to date")
        return 1 if problems else 0
    if args.cmd == "info":
        try:
            print(f"library: {library_path()}")
            print(f"devices: {device_count()}")
        except (GpuLibraryMissing, GpuError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
