"""The tensor kernels on a GPU (`tools/device_check.sh tensor`): the fixed mode's limb variant
against the golden model (10,000 MNIST test images, random batches), the half mode against
cpu-float, and device-memory speed of every fixed-mode variant, float and half from 16 to
1,000,000 images.  Prints; writes nothing."""

import numpy as np

from lenet5_pynq import fixedspec, golden, gpu, mnist, weights
from lenet5_pynq.backends.cpu import FloatBackend

params = weights.load()[0]
layers, spec = fixedspec.load_quantized()
images, labels = mnist.load(split="test")
images = np.ascontiguousarray(images)
net = gpu.GpuNetwork(params, layers)
ref_c, ref_l = golden.predict_raw(images, layers)
for variant in ("warp-small", "tensor"):
    net.set_variant(variant)
    try:
        c, lg = net.infer(images, "fixed")
    except gpu.GpuError as e:
        print(variant, "ERROR", e)
        continue
    bad = int((lg != ref_l).any(axis=1).sum())
    print(
        f"fixed {variant}: {bad} images differ; classes differ {int((c != ref_c).sum())}; acc {(c == labels).mean():.4%}"
    )
    if bad:
        i = int(np.nonzero((lg != ref_l).any(axis=1))[0][0])
        print("  first", i, lg[i], ref_l[i])
rng = np.random.default_rng(1)
for n in (1, 3, 17, 1000, 4099):
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    net.set_variant("tensor")
    c, lg = net.infer(x, "fixed")
    rc, rl = golden.predict_raw(x, layers)
    print(f"random n={n}: logits differ on {int((lg != rl).any(axis=1).sum())}")
flt = FloatBackend(params=params).logits(images)
net.set_variant("auto")
_, fl = net.infer(images, "float")
try:
    hc, hl = net.infer(images, "half")
    scale = np.abs(flt).max(axis=1, keepdims=True)
    print(
        f"half: classes agree with cpu-float {int((hc == flt.argmax(1)).sum())}/10000, acc {(hc == labels).mean():.4%} "
        f"(float {(fl.argmax(1) == labels).mean():.4%}); worst rel {float((np.abs(hl - flt) / scale).max()):.3e}, "
        f"median rel {float(np.median(np.abs(hl - flt) / scale)):.3e}"
    )
except gpu.GpuError as e:
    print("half ERROR", e)
big = np.ascontiguousarray(np.tile(images, (100, 1, 1)))
for mode, variant in (
    ("fixed", "block"),
    ("fixed", "warp-small"),
    ("fixed", "tensor"),
    ("float", "auto"),
    ("half", "auto"),
):
    net.set_variant(variant)
    try:
        for n, pool, calls in (
            (16, images[:160], 200),
            (1024, images[:8192], 50),
            (2048, images[:8192], 50),
            (4096, images[:8192], 50),
            (10000, images, 20),
            (1_000_000, big, 3),
        ):
            sec = float(np.median(net.time_device(pool, n, mode, calls=calls, warmup=2, repeats=5)))
            print(f"{mode} {variant}: device {n / sec / 1e6:.2f} M images/s at {n:,} ({sec * 1e6:.1f} us a call)")
    except gpu.GpuError as e:
        print(mode, variant, "ERROR", e)
net.close()
