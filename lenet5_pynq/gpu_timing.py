"""The GPU part of the benchmark, the measurement itself (`run`, `table`): the CUDA library (`gpu`, `gpu-float`, `gpu-fp16`) and its PyTorch peers
(`torch`, `torch-fp16`, `torch-compile`), measured in one process on one card.

    python -m lenet5_pynq.gpu_bench --backends gpu,gpu-float,gpu-fp16,torch,torch-fp16,torch-compile \
        [--batches 1,100,10000,100000,1000000] [--repeats 7] [--where device,host,pinned,copy] [--json FILE]

Rows per backend and batch (`--where`):
* "device": uint8 images already in device memory, classes and logits left there (the
  throughput comparison).  Timed with CUDA events around `calls` back-to-back calls (enough for
  >= 20 ms), rotating over input sets that together exceed the L2 cache, after a warm-up;
  the median over repeats.
* "host": uint8 images in a plain (pageable) numpy array to classes and logits in numpy arrays,
  end to end, timed with the host clock (median over repeats).  Batch 1 is the latency of one
  image; the library's batches of up to 8 images go through its resident kernel (`resident` in
  the row), more than 256 through its host pipeline (its shape: `threads`, `chunk` in the row).
* "pinned" (the library only): the same from images and into outputs in page-locked memory
  (`GpuNetwork.empty_pinned`, `empty_pinned_outputs`), which the pipeline transfers in place.
* "copy" (the library only): the physical limits the host rows are measured against, in the
  same run: rows "copy-pageable" and "copy-pinned", one synchronous host-to-device copy of the
  largest batch's images from a numpy array and from page-locked memory (median over repeats;
  `images_per_second` is images' worth of bytes, `gb_per_second` the bytes).

`lenet5_pynq.bench` calls `run()` for backend names starting with "gpu" or "torch"; `gpu_bench` is
the command.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time

import numpy as np

DEFAULT_BATCHES = (1, 100, 10_000, 100_000, 1_000_000)
ROTATE_BYTES = 256 << 20  # input sets per batch size cover at least this much (L2 is 50 MB on H100)
MAX_SET_BYTES = 2 << 30
TARGET_SECONDS = 0.02  # per timed repeat
WHERES = ("device", "host", "pinned", "copy")
RUN_WHERES = ("device", "host")  # run()'s default (lenet5_pynq.bench's rows); gpu_bench asks for all


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def image_pool() -> np.ndarray:
    """MNIST test images when the data is found (lenet5_pynq.mnist.default_dir), else random bytes."""
    from . import mnist

    directory = mnist.default_dir()
    if directory is not None:
        try:
            images, _ = mnist.load(directory, "test")
            return np.ascontiguousarray(images, dtype=np.uint8)
        except Exception as e:
            _log(f"gpu_bench: cannot read MNIST from {directory} ({e}); using random images")
    else:
        _log("gpu_bench: no MNIST directory ($LENET5_MNIST); using random images")
    return np.random.default_rng(0).integers(0, 256, (10_000, 28, 28), dtype=np.uint8)


def _sets(batch: int, image_bytes: int) -> int:
    per = batch * image_bytes
    return max(1, min(64, math.ceil(ROTATE_BYTES / per), MAX_SET_BYTES // per))


def _tile(pool: np.ndarray, count: int) -> np.ndarray:
    reps = math.ceil(count / len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:count] if reps > 1 else pool[:count])


def _row(name: str, batch: int, where: str, seconds: float, device: str, **extra) -> dict:
    return {
        "backend": name,
        "batch": batch,
        "where": where,
        "seconds_per_call": seconds,
        "images_per_second": batch / seconds,
        "us_per_image": seconds / batch * 1e6,
        "device": device,
        **extra,
    }


def _calls_for(seconds_one: float) -> int:
    return int(min(5000, max(1, math.ceil(TARGET_SECONDS / max(seconds_one, 1e-7)))))


def _host_times(fn, repeats: int) -> list[float]:
    fn()  # warm-up (allocations, first-touch, compilation)
    t0 = time.perf_counter()
    fn()
    calls = _calls_for(time.perf_counter() - t0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return times


def _host_row(net, mode, name, batch, where, repeats, images, classes, logits) -> dict:
    resident0 = net.resident_stats()[0]
    times = _host_times(functools.partial(net.infer_into, images, mode, classes, logits), repeats)
    # resident: the calls went through the resident kernel (cuda/include/lenet5_gpu.h)
    resident = net.resident_stats()[0] > resident0
    # the host pipeline's shape, which batches of more than 256 images take (lenet5_gpu.h)
    threads, chunk = net.host_pipeline()
    row = _row(name, batch, where, statistics.median(times), net.device_name, resident=resident)
    row.update(threads=threads, chunk=chunk)
    _log(f"  {name:14s} {where:6s} batch {batch:>9,d}: {row['seconds_per_call'] * 1e6:12.1f} us per call")
    return row


def _copy_rows(net, name: str, batch: int, repeats: int, pool: np.ndarray) -> list[dict]:
    """Host-to-device copies of `batch` images from pageable and from page-locked memory."""
    pageable = _tile(pool, batch)
    pinned = net.empty_pinned(batch)
    pinned[...] = pageable
    rows = []
    for memory, host in (("pageable", pageable), ("pinned", pinned)):
        seconds = statistics.median(net.time_copy(host, repeats))
        rows.append(
            _row(name, batch, f"copy-{memory}", seconds, net.device_name, gb_per_second=host.nbytes / seconds / 1e9)
        )
        _log(f"  {name:14s} copy {memory:8s} {host.nbytes / 1e6:,.0f} MB: {rows[-1]['gb_per_second']:.1f} GB/s")
    return rows


def _bench_library(backend, name: str, batches, repeats: int, pool: np.ndarray, wheres) -> list[dict]:
    net, mode = backend.net, backend.mode
    rows = []
    if "copy" in wheres:
        rows += _copy_rows(net, name, max(batches), repeats, pool)
    for batch in batches:
        if "device" in wheres:
            sets = _sets(batch, net.image_bytes)
            images = _tile(pool, sets * batch)
            est = float(np.median(net.time_device(images, batch, mode, calls=1, warmup=2, repeats=3)))
            calls = _calls_for(est)
            times = net.time_device(images, batch, mode, calls=calls, warmup=max(2, calls // 4), repeats=repeats)
            rows.append(_row(name, batch, "device", statistics.median(times), net.device_name, calls=calls, sets=sets))
            _log(f"  {name:14s} device batch {batch:>9,d}: {rows[-1]['images_per_second'] / 1e6:9.3f} M images/s")
        if "host" in wheres:
            images = _tile(pool, batch)
            classes = np.empty(batch, np.int32)
            logits = np.empty((batch, net.num_classes), net.logits_dtype(mode))
            rows.append(_host_row(net, mode, name, batch, "host", repeats, images, classes, logits))
        if "pinned" in wheres:
            images = net.empty_pinned(batch)
            images[...] = _tile(pool, batch)
            classes, logits = net.empty_pinned_outputs(batch, mode)
            rows.append(_host_row(net, mode, name, batch, "pinned", repeats, images, classes, logits))
            del images, classes, logits  # page-locked memory back before the next batch
    return rows


def _time_torch_device(backend, views: list, calls: int) -> float:
    """Seconds per forward pass over `calls` passes cycling through `views`, by CUDA events."""
    torch = backend.torch
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(calls):
        backend.forward_device(views[i % len(views)])
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e-3 / calls


def _bench_torch(backend, name: str, batches, repeats: int, pool: np.ndarray, wheres) -> list[dict]:
    torch = backend.torch
    rows = []
    for batch in batches:
        if "device" in wheres:
            sets = _sets(batch, 784)
            x = torch.from_numpy(_tile(pool, sets * batch)).to(backend.device)
            views = [x[i * batch : (i + 1) * batch] for i in range(sets)]
            t0 = time.perf_counter()
            for v in views[:2]:
                backend.forward_device(v)  # warm-up: cuDNN autotuning, compilation
            torch.cuda.synchronize()
            _log(f"  {name:14s} warm-up batch {batch:,d}: {time.perf_counter() - t0:.1f} s")
            timed = functools.partial(_time_torch_device, backend, views)
            est = statistics.median(timed(1) for _ in range(3))
            calls = _calls_for(est)
            timed(max(1, calls // 4))
            times = [timed(calls) for _ in range(repeats)]
            rows.append(
                _row(name, batch, "device", statistics.median(times), backend.device_name, calls=calls, sets=sets)
            )
            _log(f"  {name:14s} device batch {batch:>9,d}: {rows[-1]['images_per_second'] / 1e6:9.3f} M images/s")
            del x, views, timed  # timed holds the views too
        if "host" in wheres:
            images = _tile(pool, batch)
            times = _host_times(functools.partial(backend.predict, images), repeats)
            rows.append(_row(name, batch, "host", statistics.median(times), backend.device_name))
            _log(f"  {name:14s} host   batch {batch:>9,d}: {rows[-1]['seconds_per_call'] * 1e6:12.1f} us per call")
        torch.cuda.empty_cache()
    return rows


def run(
    names: list[str],
    batches: list[int] = DEFAULT_BATCHES,
    repeats: int = 7,
    wheres=RUN_WHERES,
    pool=None,
    on_backend_done=None,
    backend_kwargs: dict | None = None,
) -> list[dict]:
    """Rows (dicts: backend, batch, where, seconds_per_call, images_per_second, us_per_image,
    device) for each available backend; unavailable ones are skipped with a note on stderr.
    `on_backend_done(rows)` is called with the rows so far after each backend; `backend_kwargs`
    (other weights: `backends.weight_arguments`) go to every backend."""
    from .backends import BackendUnavailable, load_backend

    pool = image_pool() if pool is None else pool
    rows = []
    for name in names:
        try:
            backend = load_backend(name, verbose=False, **(backend_kwargs or {}))
        except BackendUnavailable as e:
            _log(f"gpu_bench: skipping {name}: {e}")
            continue
        _log(f"gpu_bench: {name} on {backend.device_name}")
        try:
            if name.startswith("gpu"):
                rows += _bench_library(backend, name, batches, repeats, pool, wheres)
            elif name.startswith("torch"):
                rows += _bench_torch(backend, name, batches, repeats, pool, wheres)
            else:
                raise ValueError(f"{name}: not a GPU backend")
        finally:
            backend.close()
        if on_backend_done is not None:
            on_backend_done(rows)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'backend':14s} {'where':13s} {'batch':>9s} {'M images/s':>11s} {'us/call':>12s}"]
    for r in rows:
        lines.append(
            f"{r['backend']:14s} {r['where']:13s} {r['batch']:>9,d} {r['images_per_second'] / 1e6:11.3f} "
            f"{r['seconds_per_call'] * 1e6:12.1f}"
        )
    return "\n".join(lines)
