"""LeNet-5 as data: the one description that Keras, numpy, the HLS config and the CUDA constants
are built from.  Nothing else in the project types a layer size."""

from __future__ import annotations

from dataclasses import dataclass

INPUT_HEIGHT = 28
INPUT_WIDTH = 28
INPUT_CHANNELS = 1
NUM_CLASSES = 10

# The pixel byte is the fixed-point input itself: value = pixel / 2**PIXEL_FRAC_BITS, so the
# fabric needs no divider and the float model is trained on exactly these values.
PIXEL_FRAC_BITS = 8


@dataclass(frozen=True)
class Conv:
    """Valid-padding convolution, stride 1, then ReLU, then max-pool (window = stride = pool)."""

    name: str
    filters: int
    kernel: int
    pool: int
    relu: bool = True


@dataclass(frozen=True)
class Dense:
    """Fully connected layer; ReLU on all but the last one."""

    name: str
    units: int
    relu: bool


LAYERS: tuple[Conv | Dense, ...] = (
    Conv("conv1", filters=6, kernel=5, pool=2),
    Conv("conv2", filters=16, kernel=5, pool=2),
    Dense("fc1", units=120, relu=True),
    Dense("fc2", units=84, relu=True),
    Dense("fc3", units=NUM_CLASSES, relu=False),
)


@dataclass(frozen=True)
class LayerShape:
    """Shapes derived from the spec.  Activations are (height, width, channels), channels last,
    as Keras keeps them; dense inputs are the channels-last flattening of the previous output."""

    layer: Conv | Dense
    in_shape: tuple[int, ...]
    conv_shape: tuple[int, ...]  # before pooling (same as out_shape for dense layers)
    out_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]  # Keras layout: (kh, kw, cin, cout) or (in, out)
    bias_shape: tuple[int, ...]

    @property
    def fan_in(self) -> int:
        n = 1
        for d in self.weight_shape[:-1]:
            n *= d
        return n

    @property
    def macs(self) -> int:
        n = self.fan_in
        for d in self.conv_shape:
            n *= d
        return n


def layer_shapes() -> list[LayerShape]:
    shapes = []
    shape: tuple[int, ...] = (INPUT_HEIGHT, INPUT_WIDTH, INPUT_CHANNELS)
    for layer in LAYERS:
        if isinstance(layer, Conv):
            h, w, c = shape
            conv = (h - layer.kernel + 1, w - layer.kernel + 1, layer.filters)
            if conv[0] % layer.pool or conv[1] % layer.pool:
                raise ValueError(f"{layer.name}: output {conv[:2]} not divisible by pool {layer.pool}")
            out = (conv[0] // layer.pool, conv[1] // layer.pool, layer.filters)
            weights = (layer.kernel, layer.kernel, c, layer.filters)
        else:
            fan_in = 1
            for d in shape:
                fan_in *= d
            conv = out = (layer.units,)
            weights = (fan_in, layer.units)
        shapes.append(LayerShape(layer, shape, conv, out, weights, (weights[-1],)))
        shape = out
    if shape != (NUM_CLASSES,):
        raise ValueError(f"network ends in {shape}, expected ({NUM_CLASSES},)")
    return shapes


def parameter_names() -> list[str]:
    """Keys of the weight archive, in network order."""
    return [f"{layer.name}/{part}" for layer in LAYERS for part in ("kernel", "bias")]
