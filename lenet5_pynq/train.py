"""Train LeNet-5 in Keras from the network spec and save its weights as .npz (no pickle).

    python -m lenet5_pynq.train --mnist DIR [--epochs N] [--seed S] [--out FILE]

Needs the `train` extra (tensorflow); the board never imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import cli_types, mnist, progress, weights
from .keras_model import build_model, model_weights


def _augmenter(keras, seed: int):
    # Small rotations, shifts and zooms: the variation in hand-written digits that MNIST's
    # centring leaves; nearest fill with zeros keeps the background black.
    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomRotation(0.04, fill_mode="constant", seed=seed),
            layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2),
        ]
    )


def train(
    mnist_dir,
    epochs: int = 30,
    seed: int = 1,
    batch_size: int = 128,
    limit: int | None = None,
    augment: bool = True,
    verbose: int = 1,
):
    """Train from scratch; returns (weights dict, metadata dict)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    x_train, y_train = mnist.load(mnist_dir, "train")
    x_test, y_test = mnist.load(mnist_dir, "test")
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    x_train = x_train[..., None].astype(np.float32)
    x_test = x_test[..., None].astype(np.float32)

    model = build_model(keras, dropout=0.1)
    steps = epochs * -(-len(x_train) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=3e-3, warmup_steps=steps // 20)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=seed)
    data = data.batch(batch_size)
    if augment:
        augmenter = _augmenter(keras, seed)
        data = data.map(lambda x, y: (augmenter(x, training=True), y))
    data = data.prefetch(2)
    model.fit(data, epochs=epochs, validation_data=(x_test, y_test), verbose=verbose)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    meta = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "train_images": len(x_train),
        "augment": augment,
        "keras_test_accuracy": float(accuracy),
        "tensorflow": tf.__version__,
    }
    return model_weights(model), meta


def keras_verbosity(quiet: bool) -> int:
    """Keras's `verbose` for fit: 0 with --quiet, its bar (1) on a terminal, a line per epoch (2)
    in a log."""
    if quiet:
        return 0
    return 1 if progress.enabled(file=sys.stdout) else 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.train", description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", required=True, help="directory holding the MNIST IDX files")
    parser.add_argument("--epochs", type=cli_types.positive_int, default=30)
    parser.add_argument("--seed", type=cli_types.int_at_least(0), default=1)
    parser.add_argument("--batch-size", type=cli_types.positive_int, default=128)
    parser.add_argument(
        "--limit",
        type=cli_types.positive_int,
        help="train on the first N training images only (leave it out for every image)",
    )
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--out", default="weights.npz", help="output .npz (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no Keras progress output (verbose=0)")
    args = parser.parse_args(argv)
    from .atomic import OutputError, check_outside_package, check_writable

    try:  # before the training, not after it
        check_writable(check_outside_package(args.out, "--out"), "--out")
    except OutputError as e:
        parser.error(str(e))
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print("error: training needs tensorflow: pip install -e '.[train]'", file=sys.stderr)
        return 2
    try:
        params, meta = train(
            args.mnist,
            args.epochs,
            args.seed,
            args.batch_size,
            args.limit,
            not args.no_augment,
            verbose=keras_verbosity(args.quiet),
        )
    except mnist.MnistFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        weights.save(args.out, params, meta)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"saved {args.out}: Keras test accuracy {meta['keras_test_accuracy']:.4%}")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
