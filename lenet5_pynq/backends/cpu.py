"""CPU backends: `cpu`, the bit-exact fixed-point network (a C kernel bit-identical to the numpy
golden model, or that model itself), and `cpu-float`, the float32 network as Keras computes it."""

from __future__ import annotations

import numpy as np

from .. import fixedspec, golden, network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images, weight_files

# Packed words of the C kernel are padded to this many int32 lanes: the widest vector (AVX-512).
FIXED_PAD = 16
# network_defines' names for the layers, in network order.
FIXED_ROLES = ("CONV1", "CONV2", "FC1", "FC2", "FC3")
MAX_FIXED_SHIFT = 62  # fixed_net.c MAX_SHIFT: C shifts of int64 are defined below 63
EXACT_SUM_LIMIT = 2**53 - 2**39  # |bias| below it keeps every sum exact in float64 (fixed_net.c)


def fixed_kernel_problem(layers: list[fixedspec.QuantizedLayer]) -> str | None:
    """Why fixed_net.c cannot compute these layers exactly (its header comment proves the rest), or
    None.  Specs the loader accepts fail only with extreme fraction bits or biases."""
    shapes = network.layer_shapes()
    if network.INPUT_CHANNELS != 1 or not all(s.layer.relu for s in shapes[:-1]):
        return "the C kernel needs one input channel and ReLU on every layer but the last"
    for q in layers:
        out = q.formats.output
        shift = q.formats.accum.frac_bits - out.frac_bits
        if abs(shift) > MAX_FIXED_SHIFT:
            return f"{q.name}: the cast shifts by {shift} bits, beyond the C kernel's {MAX_FIXED_SHIFT}"
        if not out.signed or out.width > 16 or q.kernel.min() < -(2**15) or q.kernel.max() >= 2**15:
            return f"{q.name}: the C kernel needs signed 16-bit kernel words and outputs"
        if np.abs(q.aligned_bias).max() >= EXACT_SUM_LIMIT:
            return f"{q.name}: an aligned bias reaches 2^53 - 2^39, where sums are no longer exact"
    return None


def fixed_defines(spec: fixedspec.FixedSpec) -> dict[str, str]:
    """fixed_net.c's -D macros: the network's sizes and each layer's output cast from `spec`."""
    from .. import native

    defines = {**native.network_defines(), "FIXED_PAD": str(FIXED_PAD)}
    for role, layer in zip(FIXED_ROLES, network.LAYERS):
        f = spec.layers[layer.name]
        defines.update({
            f"{role}_SHIFT": f"({f.accum.frac_bits - f.output.frac_bits})",
            f"{role}_ROUND": f.output.rounding,
            f"{role}_SAT": f.output.saturation,
            f"{role}_RELU": str(int(layer.relu)),
            f"{role}_OUT_WIDTH": str(f.output.width),
            f"{role}_OUT_MIN": f"({f.output.min_raw})",
            f"{role}_OUT_MAX": f"({f.output.max_raw})",
        })  # fmt: skip
    return defines


def _pair_words(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """int32 words holding two int16 terms, the first in the low half (fixed_net.c `pair`)."""
    return ((first.astype(np.int64) & 0xFFFF) | (second.astype(np.int64) << 16)).astype(np.int32)


def _pad_axis(a: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    extra = -a.shape[axis] % multiple
    return np.pad(a, [(0, extra if i == axis else 0) for i in range(a.ndim)])


def _pack_fixed_for_c(layers: list[fixedspec.QuantizedLayer]) -> list[np.ndarray]:
    """Kernels and aligned biases in fixed_net.c's layout: conv1 [filter][ky][kx pair], conv2
    [ky][kx][channel pair][filter], dense [input pair][unit], filters and units padded to
    FIXED_PAD with zero words; biases int64."""
    packed = []
    for i, (shape, q) in enumerate(zip(network.layer_shapes(), layers)):
        kernel = q.kernel
        if i == 0:  # from the pixels: pairs of kernel columns
            w = _pad_axis(kernel[:, :, 0, :].transpose(2, 0, 1), 2, 2)  # filter, ky, kx
            words = _pair_words(w[..., 0::2], w[..., 1::2])
        elif isinstance(shape.layer, network.Conv):
            w = _pad_axis(_pad_axis(kernel, 2, 2), 3, FIXED_PAD)  # ky, kx, channel, filter
            words = _pair_words(w[:, :, 0::2], w[:, :, 1::2])
        else:
            w = _pad_axis(_pad_axis(kernel, 0, 2), 1, FIXED_PAD)  # input, unit
            words = _pair_words(w[0::2], w[1::2])
        packed += [np.ascontiguousarray(words), np.ascontiguousarray(q.aligned_bias, np.int64)]
    return packed


def _check_threads(threads) -> int:
    """0 for None (the backend's default), else the thread count; ValueError unless a whole number >= 1."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a whole number of at least 1 (or None), not {threads!r}")
    return int(threads)


class GoldenBackend(Backend):
    """The fixed-point network in integer arithmetic: raw int16 logits, as the fabric returns.
    Other weights run with their spec (`weight_files`: by default the one beside them).

    engine: "c" runs fixed_net.c (compiled on first use, bit-identical to golden.predict_raw),
    "numpy" the golden model itself, "auto" C where it builds, else numpy with a note on stderr.
    threads: threads per call of the C kernel, the calling one included (None: the processors this
    process may run on); the kernel's persistent worker pool (native/work_pool.h) supplies the
    others, and a call of fewer than 5 images runs on the calling thread.  The numpy engine
    ignores it.  `predict` may be called from several threads at once: the kernel only reads the
    weights, and a call that finds the pool busy with another runs on its own thread."""

    name = "cpu"
    exact = True

    def __init__(self, weights_path=None, spec_path=None, engine: str = "auto", threads: int | None = None):
        if engine not in ("auto", "c", "numpy"):
            raise ValueError(f"engine must be auto, c or numpy, not {engine!r}")
        self.threads = threads
        self._threads = _check_threads(threads) or _usable_processors()
        self.layers, self.spec = fixedspec.load_quantized(*weight_files(weights_path, spec_path))
        self.logit_scale = self.spec.logits.scale
        self._lib = self.isa = None
        if engine != "numpy":
            from .. import native

            problem = fixed_kernel_problem(self.layers)
            if problem is None:
                try:
                    self._ffi, self._lib = native.load("fixed_net.c", fixed_defines(self.spec))
                except native.BuildError as e:
                    problem = str(e)
            if problem is not None:
                if engine == "c":
                    raise BackendUnavailable(problem)
                native._say_once(f"cpu runs on numpy (slower): {problem}")
        self.engine = "c" if self._lib is not None else "numpy"
        # bench's name for the row: the peer `cpu-numpy` when asked for, "cpu (numpy)" as a fallback
        self.label = "cpu-numpy" if engine == "numpy" else self.name if self.engine == "c" else f"{self.name} (numpy)"
        if self._lib is not None:
            self._use_kernel(self._ffi, self._lib)

    def _use_kernel(self, ffi, lib) -> None:
        """Run `lib`, a build of fixed_net.c for this spec (tests pass builds of other vector paths)."""
        self._ffi, self._lib = ffi, lib
        self._packed = _pack_fixed_for_c(self.layers)
        self._param_ptrs = ffi.new("void *[]", [ffi.from_buffer(a) for a in self._packed])
        self.isa = ffi.string(lib.lenet5_fixed_isa()).decode()  # which multiply-adds, for reports

    def predict(self, images) -> Prediction:
        images = check_images(images)
        if self._lib is None:
            classes, logits = golden.predict_raw(images, self.layers)
            return Prediction(classes, logits, self.logit_scale)
        golden._check_exact(self.layers)  # the same refusal as the numpy model's
        logits = np.empty((len(images), network.NUM_CLASSES), np.int16)
        classes = np.empty(len(images), np.int64)
        ffi = self._ffi
        status = self._lib.lenet5_fixed_forward(
            self._param_ptrs,
            ffi.from_buffer("uint8_t[]", images),
            len(images),
            self._threads,
            ffi.from_buffer("int16_t[]", logits),
            ffi.from_buffer("int64_t[]", classes),
        )
        if status:
            raise RuntimeError(f"lenet5_fixed_forward failed with status {status}")
        return Prediction(classes, logits, self.logit_scale)


class NumpyFloatModel:
    """The float32 network in numpy (im2col matrix products); also measures activations."""

    def __init__(self, params: dict[str, np.ndarray]):
        self._layers = []
        for shape in network.layer_shapes():
            layer = shape.layer
            kernel = params[f"{layer.name}/kernel"]
            if isinstance(layer, network.Conv):
                kernel = golden.conv_matrix(kernel)
            self._layers.append((layer, np.ascontiguousarray(kernel), params[f"{layer.name}/bias"]))
        self._input_scale = np.float32(2.0**-network.PIXEL_FRAC_BITS)

    def logits(self, images: np.ndarray, observe=None) -> np.ndarray:
        """Float logits; `observe(layer_name, output)` sees each layer's output if given."""
        x = images[..., None].astype(np.float32) * self._input_scale
        for layer, kernel, bias in self._layers:
            if isinstance(layer, network.Conv):
                # Pool before bias and ReLU: both are monotone and the bias is per channel.
                x = np.maximum(golden.max_pool(golden.conv(x, kernel, layer.kernel), layer.pool) + bias, 0)
            else:
                x = x.reshape(len(x), -1) @ kernel + bias
                if layer.relu:
                    np.maximum(x, 0, out=x)
            if observe is not None:
                observe(layer.name, x)
        return x


def _pack_for_c(params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The ten arrays the C kernel's `lenet5_float_pack` reads: each layer's kernel and bias in
    network order, in Keras's layouts, as contiguous float32 (the kernel lays them out for its
    vectors itself, so the layout lives in one place, float_net.c)."""
    return [np.ascontiguousarray(params[name], np.float32) for name in network.parameter_names()]


class FloatBackend(Backend):
    """The float32 network: a C kernel (compiled on first use, fused multiply-adds where the
    processor has them), numpy where no compiler is.

    `threads`: threads per call of the C kernel, the calling one included (None: the processors
    this process may run on), the others from its persistent worker pool (native/work_pool.h); a
    call of fewer than 5 images runs on the calling thread.  The numpy fallback ignores it.
    `predict` may be called from several threads at once (the kernel keeps each call's work to
    itself; a call that finds the pool busy with another runs on its own thread)."""

    name = "cpu-float"

    def __init__(self, weights_path=None, params=None, engine: str = "auto", threads: int | None = None):
        self.threads = threads
        self._threads = _check_threads(threads) or _usable_processors()
        # `params=` goes through the same checks as an archive (shapes, finite, representable)
        params = weights.load(weights_path)[0] if params is None else weights.check(params, "params")
        self._numpy = NumpyFloatModel(params)
        self._lib = None
        if engine not in ("auto", "c", "numpy"):
            raise ValueError(f"engine must be auto, c or numpy, not {engine!r}")
        if engine != "numpy":
            from .. import native

            try:
                self._ffi, self._lib = native.load("float_net.c", native.network_defines())
            except native.BuildError as e:
                if engine == "c":
                    raise BackendUnavailable(str(e)) from None
                native._say_once(f"cpu-float runs on numpy (slower): {e}")
        self.engine = "c" if self._lib is not None else "numpy"
        # What `bench` and the reports call it: the numpy fallback is not the C kernel.
        self.label = self.name if self.engine == "c" else f"{self.name} (numpy)"
        if self._lib is not None:
            self._packed = _packed_for_kernel(self._ffi, self._lib, params)
            self._packed_ptr = self._ffi.from_buffer("float[]", self._packed)

    def logits(self, images: np.ndarray) -> np.ndarray:
        if self._lib is None:
            return self._numpy.logits(images)
        images = np.ascontiguousarray(images, np.uint8)
        out = np.empty((len(images), network.NUM_CLASSES), np.float32)
        status = self._lib.lenet5_float_forward(
            self._packed_ptr,
            self._ffi.from_buffer("uint8_t[]", images),
            len(images),
            self._ffi.from_buffer("float[]", out),
            self._threads,
        )
        if status:
            raise RuntimeError(f"lenet5_float_forward failed with status {status}")
        return out

    def predict(self, images) -> Prediction:
        logits = self.logits(check_images(images))
        return Prediction(logits.argmax(axis=1), logits, 1.0)


def _packed_for_kernel(ffi, lib, params: dict[str, np.ndarray]) -> np.ndarray:
    """The parameters in the C kernel's own layout, packed by the kernel (`lenet5_float_pack`)."""
    arrays = _pack_for_c(params)
    packed = np.empty(lib.lenet5_float_packed_size(), np.float32)
    pointers = ffi.new("float *[]", [ffi.from_buffer("float[]", a) for a in arrays])
    if lib.lenet5_float_pack(pointers, ffi.from_buffer("float[]", packed), len(packed)):
        raise RuntimeError("lenet5_float_pack refused its buffer size")
    return packed


def _usable_processors() -> int:
    """The processors this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
