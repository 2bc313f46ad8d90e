"""`GpuNetwork`: a handle of the CUDA library holding one network's weights on one GPU, in
float mode (and its float16 tensor-core twin, "half"), fixed mode or both, with host and device
entry points."""

from __future__ import annotations

import numpy as np

from .. import network
from .library import GpuError, _check, header_enum, load_library

MODES = header_enum("MODE")  # {"float": 0, "fixed": 1, "half": 2}
_LOGIT_DTYPES = {m: np.dtype(np.int16 if name == "fixed" else np.float32) for name, m in MODES.items()}
_MODE_NAMES = ", ".join(repr(m) for m in MODES)
_U8, _I32 = np.dtype(np.uint8), np.dtype(np.int32)
_KEEP_POINTERS = 8  # infer_into keeps the pointers of batches up to this size (the resident path's)
VARIANTS = header_enum("VARIANT")  # {"auto": 0, "warp": 1, "block": 2, "warp-small": 3, "tensor": 4}


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
                for part, values, count in (
                    ("kernel_raw", q.kernel, sizes["kernel"]),
                    ("bias_raw", q.bias, sizes["bias"]),
                ):
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
            raise ValueError(f"mode must be one of {_MODE_NAMES}, not {mode!r}")
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
            raise ValueError(f"mode must be one of {_MODE_NAMES}, not {mode!r}")
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
        self._last = (
            (images, classes, logits, mode, n, m, img_ptr, cls_ptr, log_ptr) if 0 < n <= _KEEP_POINTERS else None
        )
        status = self.lib.lenet5_gpu_infer_host(handle, m, img_ptr, n, cls_ptr, log_ptr)
        if status:
            _check(self.lib, ffi, status, "infer")

    def set_host_pipeline(self, threads: int = 0, chunk: int = 0) -> None:
        """The host path's pipeline for batches of more than 256 images: `threads` lanes (CPU
        threads, each with its own stream and pinned staging; 0: half the cores, at most 8) and
        chunks of at most `chunk` images (0: 8192); see lenet5_gpu_set_host_pipeline."""
        _check(
            self.lib,
            self.ffi,
            self.lib.lenet5_gpu_set_host_pipeline(self._open(), int(threads), int(chunk)),
            "set host pipeline",
        )

    def host_pipeline(self) -> tuple[int, int]:
        """(threads, chunk) of the host pipeline in use, the defaults resolved."""
        threads, chunk = self.ffi.new("int *"), self.ffi.new("int64_t *")
        _check(self.lib, self.ffi, self.lib.lenet5_gpu_host_pipeline(self._open(), threads, chunk), "host pipeline")
        return int(threads[0]), int(chunk[0])

    def pinned_array(self, shape, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array in page-locked host memory (cudaHostAlloc, portable),
        which the host path transfers from or into in place, without staging.  The memory is freed
        when the array and every view of it are gone (the array's base holds it); it does not need
        this network to stay open.  Like any numpy array it is not locked for concurrent writers;
        allocating and freeing are thread-safe."""
        dtype = np.dtype(dtype)
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"shape {shape} has a negative dimension")
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            return np.empty(shape, dtype)
        ffi, lib = self.ffi, self.lib
        ptr = ffi.new("void **")
        _check(lib, ffi, lib.lenet5_gpu_alloc_host(self._open(), count * dtype.itemsize, ptr), "pinned allocation")
        owner = ffi.gc(ptr[0], lib.lenet5_gpu_free_host)  # freed when the last array over it goes
        return np.frombuffer(ffi.buffer(owner, count * dtype.itemsize), dtype, count).reshape(shape)

    def empty_pinned(self, n: int) -> np.ndarray:
        """uint8[n, 28, 28] images in page-locked memory (`pinned_array`): `infer`/`infer_into`
        transfer them without a host copy."""
        return self.pinned_array((n, network.INPUT_HEIGHT, network.INPUT_WIDTH), np.uint8)

    def empty_pinned_outputs(self, n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(classes int32[n], logits [n, 10] of the mode's dtype) in page-locked memory, for
        `infer_into`: the results are copied back into them directly."""
        return (
            self.pinned_array(n, _I32),
            self.pinned_array((n, self.num_classes), self.logits_dtype(mode)),
        )

    def time_copy(self, host: np.ndarray, repeats: int) -> np.ndarray:
        """Seconds of each of `repeats` synchronous copies of `host` (a C-contiguous array,
        pageable or from `pinned_array`) to device memory, after one untimed copy."""
        ffi = self.ffi
        out = np.empty(int(repeats), np.float64)
        _check(
            self.lib, ffi,
            self.lib.lenet5_gpu_time_copy(
                self._open(), ffi.from_buffer(host), host.nbytes, int(repeats),
                ffi.cast("double *", ffi.from_buffer(out, require_writable=True)),
            ),
            "time_copy",
        )  # fmt: skip
        return out

    def _open(self):
        if self._handle is None:
            raise ValueError("network is closed")
        return self._handle

    def set_resident(self, idle_us: int) -> None:
        """Batches of 1..8 host images go to a kernel that stays on the GPU between calls and ends
        after `idle_us` microseconds without one; 0: a kernel launch per call (see
        lenet5_gpu_set_resident in cuda/include/lenet5_gpu.h)."""
        _check(self.lib, self.ffi, self.lib.lenet5_gpu_set_resident(self._handle, int(idle_us)), "set resident")

    def resident_stats(self) -> tuple[int, int, float]:
        """(calls answered by the resident kernel, resident kernels launched, mean microseconds
        on the GPU clock from the kernel seeing a call to its answer) so far."""
        calls, launches, gpu_us = self.ffi.new("int64_t *"), self.ffi.new("int64_t *"), self.ffi.new("double *")
        _check(
            self.lib,
            self.ffi,
            self.lib.lenet5_gpu_resident_stats(self._handle, calls, launches, gpu_us),
            "resident stats",
        )
        return int(calls[0]), int(launches[0]), float(gpu_us[0])

    def infer(self, images: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        classes = np.empty(n, np.int32)
        logits = np.empty((n, self.num_classes), self.logits_dtype(mode))
        self.infer_into(images, mode, classes, logits)
        return classes, logits

    def infer_device(
        self, images_ptr: int, n: int, mode: str, classes_ptr: int, logits_ptr: int, stream: int = 0
    ) -> None:
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

    def time_device(
        self, images: np.ndarray, batch: int, mode: str, calls: int, warmup: int, repeats: int
    ) -> np.ndarray:
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


def pinned_bytes() -> int:
    """Bytes of page-locked memory that `GpuNetwork.pinned_array` allocated and that are not yet
    freed, in this process."""
    ffi, lib = load_library()
    out = ffi.new("int64_t *")
    _check(lib, ffi, lib.lenet5_gpu_host_bytes(out), "host bytes")
    return int(out[0])
