"""CUDA library sweep, on a GPU machine: every kernel variant at several batch sizes (device
memory to device memory), then one image host to host with a launch per call, through the bare C
call and through `GpuNetwork.infer_into`.  It chose AUTO's crossovers (`kBlockVariantBelow` in
cuda/src/api.cu); rerun it after changing a kernel variant.

    python tools/sweep.py [--batches 1,100,1000,...] [--json FILE]    (tools/device_check.sh sweep)

Needs the built library (python -m lenet5_pynq.gpu build) and lenet5_pynq installed (pip install -e .).
"""

import argparse
import json
import statistics
import sys
import time

import _requires  # noqa: F401  (stops with one line when lenet5_pynq is not installed)
import numpy as np

from lenet5_pynq import fixedspec, gpu, gpu_timing, weights


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,16,100,300,1000,2047,4096,10000,100000,1000000")
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    pool = gpu_timing.image_pool()
    params, quantized = weights.load()[0], fixedspec.load_quantized()[0]
    net = gpu.GpuNetwork(params, quantized)
    print(f"device: {net.device_name}")
    rows = []
    for mode in ("float", "fixed"):
        for variant in ("block", "warp", "warp-small"):
            if variant == "warp-small" and mode == "float":
                continue
            net.set_variant(variant)
            for batch in batches:
                if variant == "block" and batch > 100_000:
                    continue
                sets = gpu_timing._sets(batch, 784)
                images = gpu_timing._tile(pool, sets * batch)
                est = float(np.median(net.time_device(images, batch, mode, 1, 2, 3)))
                calls = gpu_timing._calls_for(est)
                t = statistics.median(net.time_device(images, batch, mode, calls, max(2, calls // 4), 5))
                rows.append(dict(mode=mode, variant=variant, batch=batch, seconds=t, images_per_second=batch / t))
                print(f"{mode:6s} {variant:10s} {batch:>8d} {t * 1e6:10.1f} us {batch / t / 1e6:9.3f} M/s", flush=True)
    net.set_variant("auto")

    # One image, host to host, a launch per call (the resident path is off here: tools/latency.py
    # measures it): the Python wrapper against the bare C call.
    lat = []
    net.set_resident(0)
    ffi, lib, h = net.ffi, net.lib, net._handle
    img = np.ascontiguousarray(pool[:1])
    for mode in ("float", "fixed"):
        classes = np.empty(1, np.int32)
        logits = np.empty((1, 10), net.logits_dtype(mode))
        m = gpu.MODES[mode]
        pi = ffi.cast("const uint8_t *", ffi.from_buffer(img))
        pc = ffi.cast("int32_t *", ffi.from_buffer(classes))
        pl = ffi.cast("void *", ffi.from_buffer(logits))
        calls = (
            ("C call", lambda m=m, pi=pi, pc=pc, pl=pl: lib.lenet5_gpu_infer_host(h, m, pi, 1, pc, pl)),
            ("infer_into", lambda mode=mode, c=classes, lg=logits: net.infer_into(img, mode, c, lg)),
        )
        for name, fn in calls:
            for _ in range(200):
                fn()
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                for _ in range(200):
                    fn()
                times.append((time.perf_counter() - t0) / 200)
            t = statistics.median(times)
            lat.append(dict(mode=mode, call=name, seconds=t))
            print(f"latency {mode:6s} {name:10s} {t * 1e6:8.2f} us", flush=True)
    net.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": net.device_name, "variants": rows, "latency": lat}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
