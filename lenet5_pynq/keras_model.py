"""The Keras model of the network (`network.LAYERS`) and the bridge between its weights and the
package's weight dictionaries.  Used by training and by the Keras and hls4ml peers; the module
itself imports no tensorflow: callers pass the `keras` module in, so nothing here runs on a board.
"""

from __future__ import annotations

import numpy as np

from . import network


def build_model(keras, dropout: float = 0.0, rescale: bool = True):
    """The Keras model of the spec; the input is the pixel byte as float, scaled exactly (or,
    with rescale=False, already scaled: for converters that know no Rescaling layer)."""
    layers = keras.layers
    x = inputs = keras.Input((network.INPUT_HEIGHT, network.INPUT_WIDTH, network.INPUT_CHANNELS))
    if rescale:
        x = layers.Rescaling(1.0 / 2**network.PIXEL_FRAC_BITS)(x)
    flattened = False
    for layer in network.LAYERS:
        if isinstance(layer, network.Conv):
            x = layers.Conv2D(layer.filters, layer.kernel, activation="relu", name=layer.name)(x)
            x = layers.MaxPooling2D(layer.pool)(x)
        else:
            if not flattened:
                x = layers.Flatten()(x)
                flattened = True
            if dropout:
                x = layers.Dropout(dropout)(x)
            x = layers.Dense(layer.units, activation="relu" if layer.relu else None, name=layer.name)(x)
    return keras.Model(inputs, x, name="lenet5")


def model_weights(model) -> dict[str, np.ndarray]:
    out = {}
    for layer in network.LAYERS:
        kernel, bias = model.get_layer(layer.name).get_weights()
        out[f"{layer.name}/kernel"] = kernel.astype(np.float32)
        out[f"{layer.name}/bias"] = bias.astype(np.float32)
    return out


def set_model_weights(model, params: dict[str, np.ndarray]) -> None:
    for layer in network.LAYERS:
        model.get_layer(layer.name).set_weights([params[f"{layer.name}/kernel"], params[f"{layer.name}/bias"]])
