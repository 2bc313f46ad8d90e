"""Prepare .gpu_data/ (gitignored through .git/info/exclude) for a run on a GPU machine that has
no tensorflow and no ../shared/mnist: the MNIST test split and Keras's logits for the current
weights (tests/test_gpu.py::test_float_matches_keras reads them when their weights hash matches).

    python cuda/prepare_device_data.py [--mnist DIR]
"""

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lenet5_pynq import mnist, train, weights  # noqa: E402


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

    model = train.build_model(keras)
    train.set_model_weights(model, weights.load()[0])
    logits = model.predict(images[..., None].astype(np.float32), batch_size=1000, verbose=0)
    sha = hashlib.sha256(weights.SHIPPED.read_bytes()).hexdigest()
    np.savez(args.out / "keras_logits.npz", logits=logits.astype(np.float32), weights_sha256=np.array(sha))
    print(f"{args.out}: MNIST test split, Keras logits for weights {sha[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
