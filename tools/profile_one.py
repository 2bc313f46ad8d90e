"""Launches for Nsight Compute (device_check.sh ncu / ncu-lat): one call per mode of the given
variant and batch size.   python cuda/profile_one.py [variant] [batch]"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lenet5_pynq import fixedspec, gpu, weights  # noqa: E402

variant = sys.argv[1] if len(sys.argv) > 1 else "warp"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
net = gpu.GpuNetwork(weights.load()[0], fixedspec.load_quantized()[0])
net.set_variant(variant)
for mode in ("float", "fixed"):
    net.time_device(images, n, mode, calls=1, warmup=1, repeats=1)
