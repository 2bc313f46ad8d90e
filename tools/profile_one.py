"""The launches Nsight Compute profiles (tools/device_check.sh ncu / ncu-lat): one kernel call per
mode (float, then fixed) of the given variant and batch size, on random images.

    ncu --kernel-name regex:fused ... python tools/profile_one.py [variant] [batch]

Needs the built library (python -m lenet5_pynq.gpu build) and lenet5_pynq installed (pip install -e .).
"""

import sys

import _requires  # noqa: F401  (stops with one line when lenet5_pynq is not installed)
import numpy as np

from lenet5_pynq import fixedspec, gpu, weights

variant = sys.argv[1] if len(sys.argv) > 1 else "warp"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
net = gpu.GpuNetwork(weights.load()[0], fixedspec.load_quantized()[0])
net.set_variant(variant)
for mode in ("float", "fixed"):
    net.time_device(images, n, mode, calls=1, warmup=1, repeats=1)
