"""CUDA library sweep, on a GPU machine: every kernel variant at several batch sizes (device
memory to device memory), then one image host to host with a launch per call, through the bare C
call and through `GpuNetwork.infer_into`.  It chose AUTO's crossovers (`kBlockVariantBelow` in
cuda/src/handle.cu); rerun it after changing a kernel variant.  With --host, instead: the host
pipeline's shapes (threads x chunk, `set_host_pipeline`) at one large batch, from pageable and
from page-locked arrays, in both modes; it chose the pipeline's defaults (cuda/src/host_path.cu).

    python tools/sweep.py [--batches 1,100,1000,...] [--json FILE]    (tools/device_check.sh sweep)
    python tools/sweep.py --host [--threads 1,2,4,8] [--chunks 8192,16384] [--json FILE]    (... hostsweep)

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
    ap.add_argument("--host", action="store_true", help="sweep the host pipeline instead")
    ap.add_argument("--threads", default="1,2,4,6,8,12")
    ap.add_argument("--chunks", default="4096,8192,16384")
    ap.add_argument("--images", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.host:
        return host_sweep(args)
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


def host_sweep(args) -> int:
    """Seconds per host-to-host call of args.images images for each pipeline shape, median of 5
    after a warm-up call (which allocates the lanes' buffers)."""
    pool = gpu_timing.image_pool()
    net = gpu.GpuNetwork(weights.load()[0], fixedspec.load_quantized()[0])
    print(f"device: {net.device_name}; default pipeline {net.host_pipeline()}", flush=True)
    n = args.images
    pageable = gpu_timing._tile(pool, n)
    pinned = net.empty_pinned(n)
    pinned[...] = pageable
    rows = []
    for mode in ("float", "fixed"):
        outputs = {
            "pageable": (np.empty(n, np.int32), np.empty((n, 10), net.logits_dtype(mode))),
            "pinned": net.empty_pinned_outputs(n, mode),
        }
        for memory, images in (("pageable", pageable), ("pinned", pinned)):
            classes, logits = outputs[memory]
            for threads in (int(t) for t in args.threads.split(",")):
                for chunk in (int(c) for c in args.chunks.split(",")):
                    net.set_host_pipeline(threads, chunk)
                    net.infer_into(images, mode, classes, logits)
                    times = []
                    for _ in range(5):
                        t0 = time.perf_counter()
                        net.infer_into(images, mode, classes, logits)
                        times.append(time.perf_counter() - t0)
                    t = statistics.median(times)
                    rows.append(dict(mode=mode, memory=memory, threads=threads, chunk=chunk, images=n, seconds=t))
                    print(
                        f"{mode:6s} {memory:8s} threads {threads:2d} chunk {chunk:7d}: {n / t / 1e6:7.2f} M/s",
                        flush=True,
                    )
    net.set_host_pipeline(0, 0)
    for memory, host in (("pageable", pageable), ("pinned", pinned)):
        t = statistics.median(net.time_copy(host, 5))
        rows.append(dict(mode="copy", memory=memory, images=n, seconds=t))
        print(f"copy   {memory:8s} {host.nbytes / t / 1e9:6.1f} GB/s = {n / t / 1e6:7.2f} M images/s", flush=True)
    net.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": net.device_name, "host_pipeline": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
