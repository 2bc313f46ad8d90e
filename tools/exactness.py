"""Exactness figures for cuda/README.md, on a GPU machine: every kernel variant against the golden
model (fixed mode, every logit bit) and against the float CPU backend's and Keras's logits (float
mode) on the 10,000 MNIST test images.  Keras's logits come from .gpu_data/keras_logits.npz
(tools/prepare_device_data.py), skipped when absent or made for other weights.

    python tools/exactness.py    (tools/device_check.sh exact)

Needs the built library (python -m lenet5_pynq.gpu build), MNIST ($LENET5_MNIST) and lenet5_pynq
installed (pip install -e .).
"""

import hashlib
from pathlib import Path

import _requires  # noqa: F401  (stops with one line when lenet5_pynq is not installed)
import numpy as np

from lenet5_pynq import fixedspec, golden, gpu, mnist, weights
from lenet5_pynq.backends.cpu import FloatBackend

ROOT = Path(__file__).resolve().parents[1]

images, labels = mnist.load(None, "test")
images = np.ascontiguousarray(images)
params, (quantized, spec) = weights.load()[0], fixedspec.load_quantized()
ref_classes, ref_logits = golden.predict_raw(images, quantized)
cpu_float = FloatBackend(params=params).logits(images)
keras = None
f = ROOT / ".gpu_data" / "keras_logits.npz"
if f.is_file():
    with np.load(f) as z:
        if str(z["weights_sha256"]) == hashlib.sha256(weights.SHIPPED.read_bytes()).hexdigest():
            keras = z["logits"]
net = gpu.GpuNetwork(params, quantized)
print(f"device: {net.device_name}; golden accuracy {np.mean(ref_classes == labels):.4f}")
for variant in ("warp", "warp-small", "block", "auto"):
    net.set_variant(variant)
    c, lg = net.infer(images, "fixed")
    bad = int((lg != ref_logits).any(axis=1).sum())
    print(
        f"fixed {variant:10s}: images differing from the golden model in any logit bit: {bad} of {len(images)}; "
        f"classes equal: {int((c == ref_classes).sum())}"
    )
    if variant == "warp-small":
        continue
    c, lg = net.infer(images, "float")
    for name, ref in (("cpu-float", cpu_float), ("keras", keras)):
        if ref is None:
            continue
        rel = np.abs(lg - ref) / np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-6)
        print(
            f"float {variant:10s} vs {name:9s}: classes agree {int((c == ref.argmax(1)).sum())} of {len(images)}, "
            f"max |diff| / max|logit| per image {rel.max():.2e}, accuracy {np.mean(c == labels):.4f}"
        )
