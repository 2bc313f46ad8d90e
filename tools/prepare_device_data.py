"""Prepare .gpu_data/ (gitignored) for a run on a GPU machine that has no tensorflow and no
../shared/mnist: the MNIST test split and Keras's logits for the current weights
(tests/test_gpu.py::test_float_matches_keras and tools/exactness.py read them when their weights
hash matches).  Run it here, before tools/device_check.sh there, whenever the weights change.

    python tools/prepare_device_data.py [--mnist DIR] [--out DIR]

Needs tensorflow (pip install -e ".[train]") and MNIST.
"""

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import _requires  # noqa: F401  (stops with one line when lenet5_pynq is not installed)
import numpy as np

from lenet5_pynq import keras_model, mnist, weights

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", type=Path, default=mnist.default_dir())
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu_data")
    args = ap.parse_args()
    (args.out / "mnist").mkdir(parents=True, exist_ok=True)
    for f in args.mnist.glob("t10k-*"):
        shutil.copyfile(f, args.out / "mnist" / f.name)
    images, _ = mnist.load(args.out / "mnist", "test")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorflow import keras

    model = keras_model.build_model(keras)
    keras_model.set_model_weights(model, weights.load()[0])
    logits = model.predict(images[..., None].astype(np.float32), batch_size=1000, verbose=0)
    sha = hashlib.sha256(weights.SHIPPED.read_bytes()).hexdigest()
    np.savez(args.out / "keras_logits.npz", logits=logits.astype(np.float32), weights_sha256=np.array(sha))
    print(f"{args.out}: MNIST test split, Keras logits for weights {sha[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
