"""`StreamRunner`: batches through the DMA and the accelerator (buffers allocated once, batches
split into DMA-sized chunks, the next chunk's send overlapped with the current receive, caches
flushed and invalidated), and `CallTiming`, where the time of one call went."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from pynq import allocate

from .. import hls_stream, network, progress
from .core import LeNet5Core
from .dma import DMASR_ERRORS, DMASR_HALTED, DMASR_IDLE, AxiDma, describe_status
from .errors import AcceleratorError, DmaError, DmaTimeout, OverlayClosed, ShortTransfer, WeightLoadError

RESULT_BYTES = hls_stream.RESULT_DTYPE.itemsize
IMAGE_BYTES = hls_stream.IN_BEATS_PER_IMAGE * hls_stream.BEAT_BYTES
# The pad word of a result is always zero from the fabric: the driver writes this marker into it
# before a transfer, so after a timeout it can count how many results reached memory.
_PAD_MARKER = 0xFFFF

DEFAULT_TIMEOUT_S = 1.0  # per transfer, plus DEFAULT_TIMEOUT_PER_IMAGE_S for each image
DEFAULT_TIMEOUT_PER_IMAGE_S = 1e-3  # the fabric needs ~20 us an image at 100 MHz
DEFAULT_CHUNK_IMAGES = 2048  # images per DMA transfer: 1.6 MB in, 48 KB out, two of each


# --------------------------------------------------------------------------------- timing
@dataclass
class CallTiming:
    """Where the time of one call went.

    `fabric_s` is measured from the register write that starts a chunk to the poll that sees
    its last result in memory (DMA and accelerator working); `overhead_s` is everything else
    (argument checks, copies in and out, cache maintenance, register writes, Python)."""

    images: int = 0
    chunks: int = 0
    total_s: float = 0.0
    fabric_s: float = 0.0
    copy_in_s: float = 0.0
    copy_out_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.fabric_s

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "chunks": self.chunks,
            "total_s": self.total_s,
            "fabric_s": self.fabric_s,
            "overhead_s": self.overhead_s,
            "copy_in_s": self.copy_in_s,
            "copy_out_s": self.copy_out_s,
        }


def check_timeout(name: str, value, allow_zero: bool = False) -> float:
    """`value` as a float deadline in seconds: finite and positive (or zero where `allow_zero`);
    a ValueError naming `name` otherwise (NaN or infinity would switch the deadline off)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ValueError(f"{name} must be a finite number of seconds, {bound}; got {value!r}")
    return v


# ------------------------------------------------------------------------------ streaming
class StreamRunner:
    """Moves batches through DMA and accelerator.  Buffers are allocated once: two input and two
    output buffers of `chunk_images` images each, so the next chunk's images are copied in and
    sent while the accelerator works on the current chunk and the result of the previous one is
    unpacked.

    Every wait has a deadline of ``timeout_s + timeout_per_image_s * images``; on expiry, an
    error bit or a short transfer the DMA and accelerator are reset and an `AcceleratorError`
    names the channel, its status and the bytes moved.  Both deadlines are checked when set:
    finite, `timeout_s` more than zero, `timeout_per_image_s` zero or more.

    Thread safety: a `StreamRunner` is safe to share between threads.  One lock (`lock`, an
    `RLock`) is held around every transfer and register sequence (`classify`, `send_weights`,
    `reset`, `close`), so calls from several threads run one after the other.  After `close()`
    every call raises `OverlayClosed` (nothing touches the freed buffers).
    """

    def __init__(
        self,
        dma: AxiDma,
        core: LeNet5Core,
        device,
        chunk_images=DEFAULT_CHUNK_IMAGES,
        timeout_s=DEFAULT_TIMEOUT_S,
        timeout_per_image_s=DEFAULT_TIMEOUT_PER_IMAGE_S,
    ):
        if chunk_images < 1:
            raise ValueError("chunk_images must be at least 1")
        by_length = dma.max_bytes // IMAGE_BYTES
        if by_length < 1:
            raise RuntimeError(
                f"the DMA's {dma.length_width}-bit length register cannot carry one {IMAGE_BYTES}-byte image"
            )
        self.chunk_images = min(chunk_images, by_length)
        self.lock = threading.RLock()
        self._closed = False
        self.dma = dma
        self.core = core
        self._device = device
        self.timeout_s = timeout_s
        self.timeout_per_image_s = timeout_per_image_s
        self.last_timing = CallTiming()
        c = self.chunk_images
        self._in = [allocate((c, IMAGE_BYTES), np.uint8, target=device) for _ in range(2)]
        self._out = [allocate((c * RESULT_BYTES // 8,), np.uint64, target=device) for _ in range(2)]
        self._in_addr = [b.physical_address for b in self._in]
        self._out_addr = [b.physical_address for b in self._out]
        self._out_rec = [b.view(hls_stream.RESULT_DTYPE) for b in self._out]
        # The batch-1 path: views made once.
        self._in1 = self._in[0][:1]
        self._out1 = self._out[0][: RESULT_BYTES // 8]
        self._out1_rec = self._out_rec[0][:1]
        self.reset()

    # -------------------------------------------------------------------- deadlines
    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value) -> None:
        self._timeout_s = check_timeout("timeout_s", value)

    @property
    def timeout_per_image_s(self) -> float:
        return self._timeout_per_image_s

    @timeout_per_image_s.setter
    def timeout_per_image_s(self, value) -> None:
        self._timeout_per_image_s = check_timeout("timeout_per_image_s", value, allow_zero=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise OverlayClosed("the overlay driver is closed (its DMA buffers are freed); create a new LeNet5Overlay")

    # -------------------------------------------------------------------- control
    def _deadline(self, images: int) -> float:
        return time.monotonic() + self.timeout_s + self.timeout_per_image_s * images

    def reset(self) -> None:
        """Reset the DMA (and with it the accelerator), start both channels, check the core is idle."""
        with self.lock:
            self._check_open()
            self._reset()

    def _reset(self) -> None:
        deadline = time.monotonic() + max(self.timeout_s, 0.1)
        self.core.forget()
        self.dma.reset(deadline)
        while not self.core.idle:
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    "the accelerator did not return to idle after the DMA reset "
                    f"(CTRL 0x{self.core.control:02x}); its ap_rst_n should follow the DMA's "
                    "s2mm_prmry_reset_out_n: reload the overlay",
                    channel="accelerator",
                )

    def _fail(self, error: AcceleratorError):
        """Reset after a failure; mark the error recovered (or chain the reset's own failure)."""
        try:
            self._reset()
            error.recovered = True
        except AcceleratorError as reset_error:
            error.recovered = False
            raise error from reset_error
        raise error

    def _landed(self, b: int, count: int) -> int:
        """Results of buffer `b` that reached memory (their pad word lost the marker)."""
        out = self._out[b]
        out.invalidate()
        return int((self._out_rec[b]["pad"][:count] != _PAD_MARKER).sum())

    def _mark(self, b: int, count: int) -> None:
        self._out_rec[b]["pad"][:count] = _PAD_MARKER
        self._out[b][: count * RESULT_BYTES // 8].flush()

    def _launch(self, b: int, count: int, mode: int, send: bool = True) -> float:
        """Start one chunk: wait for the core to be idle, arm S2MM, (send MM2S), write n and
        mode, set ap_start.  Returns the start time."""
        core = self.core
        if not core.idle:
            deadline = self._deadline(0)
            while not core.idle:
                if time.monotonic() > deadline:
                    raise DmaTimeout(
                        f"the accelerator is still busy (CTRL 0x{core.control:02x}) before a new start",
                        channel="accelerator",
                    )
        nbytes = count * RESULT_BYTES if mode == hls_stream.MODE_CLASSIFY else hls_stream.WEIGHT_ACK_DTYPE.itemsize
        self.dma.s2mm.transfer(self._out_addr[b], nbytes)
        if send:
            self.dma.mm2s.transfer(self._in_addr[b], count * IMAGE_BYTES)
        core.configure(count, mode)
        t = time.perf_counter()
        core.start()
        return t

    def _wait_mm2s(self, deadline: float) -> None:
        mm2s = self.dma.mm2s
        while True:
            sr = mm2s.status
            if sr & DMASR_ERRORS:
                raise DmaError(
                    f"MM2S stopped with an error: DMASR {describe_status(sr)}; 0 of {mm2s.bytes_expected} bytes confirmed sent",
                    channel="MM2S",
                    status=sr,
                    bytes_moved=0,
                    bytes_expected=mm2s.bytes_expected,
                )
            if sr & DMASR_IDLE:
                return
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"MM2S did not complete: DMASR {describe_status(sr)}; the accelerator has not read all "
                    f"{mm2s.bytes_expected} bytes of its input (stalled stream or accelerator)",
                    channel="MM2S",
                    status=sr,
                    bytes_moved=None,
                    bytes_expected=mm2s.bytes_expected,
                )

    def _wait_s2mm(self, b: int, count: int, deadline: float) -> None:
        """Wait for the results of buffer `b`; check the bytes received."""
        s2mm, mm2s = self.dma.s2mm, self.dma.mm2s
        polls = 0
        while True:
            sr = s2mm.status
            if sr & DMASR_IDLE and not sr & DMASR_ERRORS:
                break
            if sr & DMASR_ERRORS or sr & DMASR_HALTED:
                moved = self._landed(b, count) * RESULT_BYTES
                raise DmaError(
                    f"S2MM stopped: DMASR {describe_status(sr)}; {moved} of {s2mm.bytes_expected} bytes reached memory",
                    channel="S2MM",
                    status=sr,
                    bytes_moved=moved,
                    bytes_expected=s2mm.bytes_expected,
                )
            polls += 1
            if not polls & 63:
                msr = mm2s.status
                if msr & DMASR_ERRORS:
                    raise DmaError(
                        f"MM2S stopped with an error: DMASR {describe_status(msr)} (the accelerator's input is cut off)",
                        channel="MM2S",
                        status=msr,
                        bytes_moved=0,
                        bytes_expected=mm2s.bytes_expected,
                    )
            if time.monotonic() > deadline:
                moved = self._landed(b, count) * RESULT_BYTES
                msr = mm2s.status
                sent = "MM2S completed" if msr & DMASR_IDLE else f"MM2S incomplete (DMASR {describe_status(msr)})"
                raise DmaTimeout(
                    f"S2MM did not complete within {self.timeout_s + self.timeout_per_image_s * count:.3g} s: "
                    f"DMASR {describe_status(sr)}; {moved} of {s2mm.bytes_expected} bytes reached memory; {sent}; "
                    f"accelerator CTRL 0x{self.core.control:02x} (stalled accelerator?)",
                    channel="S2MM",
                    status=sr,
                    bytes_moved=moved,
                    bytes_expected=s2mm.bytes_expected,
                )
        got = s2mm.received()
        if got != s2mm.bytes_expected:
            raise ShortTransfer(
                f"S2MM received {got} of {s2mm.bytes_expected} bytes: the accelerator ended its stream "
                f"(TLAST) after {got // RESULT_BYTES} of {count} results",
                channel="S2MM",
                status=sr,
                bytes_moved=got,
                bytes_expected=s2mm.bytes_expected,
            )

    # -------------------------------------------------------------------- classify
    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classes int64[N] and raw logits int16[N, 10] of uint8 images [N, 28, 28] (thread-safe)."""
        with self.lock:
            self._check_open()
            return self._classify(images)

    def _classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        if n == 1:
            return self._classify_one(images)
        timing = CallTiming(images=n)
        t_start = time.perf_counter()
        classes = np.empty(n, np.int64)
        logits = np.empty((n, network.NUM_CLASSES), np.int16)
        if n == 0:
            self.last_timing = timing
            return classes, logits
        flat = images.reshape(n, IMAGE_BYTES)
        c = self.chunk_images
        chunks = [(s, min(s + c, n)) for s in range(0, n, c)]
        timing.chunks = len(chunks)
        # Runs of several chunks show a bar on stderr (a terminal only; `progress.quiet()` silences it).
        bar = progress.bar(total=n, desc="fabric", quiet=len(chunks) <= 1, leave=False)
        try:
            t = time.perf_counter()
            self._stage(0, flat[chunks[0][0] : chunks[0][1]])
            timing.copy_in_s += time.perf_counter() - t
            self._mark(0, chunks[0][1] - chunks[0][0])
            started = self._launch(0, chunks[0][1] - chunks[0][0], hls_stream.MODE_CLASSIFY)
            for k, (s, e) in enumerate(chunks):
                b = k & 1
                count = e - s
                deadline = self._deadline(count)
                nxt = chunks[k + 1] if k + 1 < len(chunks) else None
                if nxt is not None:
                    # While the fabric works on chunk k: copy chunk k+1 in, and once the
                    # accelerator has read all of chunk k, queue chunk k+1 behind it in the stream.
                    t = time.perf_counter()
                    self._stage(1 - b, flat[nxt[0] : nxt[1]])
                    self._mark(1 - b, nxt[1] - nxt[0])
                    timing.copy_in_s += time.perf_counter() - t
                    self._wait_mm2s(deadline)
                    self.dma.mm2s.transfer(self._in_addr[1 - b], (nxt[1] - nxt[0]) * IMAGE_BYTES)
                self._wait_s2mm(b, count, deadline)
                timing.fabric_s += time.perf_counter() - started
                if nxt is not None:
                    started = self._launch(1 - b, nxt[1] - nxt[0], hls_stream.MODE_CLASSIFY, send=False)
                t = time.perf_counter()
                out = self._out[b][: count * RESULT_BYTES // 8]
                out.invalidate()
                rec = self._out_rec[b][:count]
                classes[s:e] = rec["cls"]
                logits[s:e] = rec["logits"]
                timing.copy_out_s += time.perf_counter() - t
                bar.update(count)
        except AcceleratorError as e:
            self._fail(e)
        finally:
            bar.close()
        timing.total_s = time.perf_counter() - t_start
        self.last_timing = timing
        return classes, logits

    def _stage(self, b: int, flat: np.ndarray) -> None:
        buf = self._in[b][: len(flat)]
        buf[:] = flat
        buf.flush()

    def _classify_one(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch 1: fixed views, registers written directly, no allocation, no look-up."""
        t_start = time.perf_counter()
        self._in1[0] = images.reshape(IMAGE_BYTES)
        self._in1.flush()
        self._out1_rec["pad"] = _PAD_MARKER
        self._out1.flush()
        try:
            started = self._launch(0, 1, hls_stream.MODE_CLASSIFY)
            self._wait_s2mm(0, 1, self._deadline(1))
            done = time.perf_counter()
        except AcceleratorError as e:
            self._fail(e)
        self._out1.invalidate()
        rec = self._out1_rec
        classes = np.array(rec["cls"], dtype=np.int64)  # plain ndarrays, not views of the DMA buffer
        logits = np.array(rec["logits"], dtype=np.int16)
        end = time.perf_counter()
        self.last_timing = CallTiming(images=1, chunks=1, total_s=end - t_start, fabric_s=done - started)
        return classes, logits

    # -------------------------------------------------------------------- weights
    def send_weights(self, beats: np.ndarray, expected_words: int, expected_checksum: int) -> np.void:
        """Stream a weight-load (mode 1) transfer and check the acknowledgement.

        The stream goes out in as many MM2S transfers as the length register needs (the
        accelerator reads a fixed number of beats, whatever TLAST says); it is staged in the
        first input buffer, or in a buffer allocated for it when that is too small (thread-safe)."""
        with self.lock:
            self._check_open()
            return self._send_weights(beats, expected_words, expected_checksum)

    def _send_weights(self, beats: np.ndarray, expected_words: int, expected_checksum: int) -> np.void:
        nbytes = beats.nbytes
        own = nbytes <= self._in[0].nbytes
        buf = self._in[0].reshape(-1)[:nbytes] if own else allocate((nbytes,), np.uint8, target=self._device)
        try:
            buf[:] = beats.view(np.uint8)
            buf.flush()
            ack_words = hls_stream.WEIGHT_ACK_DTYPE.itemsize // 8
            self._out[0][:ack_words] = 0
            self._out[0][:ack_words].flush()
            piece = self.dma.max_bytes // 8 * 8
            try:
                self.dma.s2mm.transfer(self._out_addr[0], hls_stream.WEIGHT_ACK_DTYPE.itemsize)
                self.core.configure(0, hls_stream.MODE_LOAD_WEIGHTS)
                self.core.start()
                deadline = self._deadline(0)
                for offset in range(0, nbytes, piece):
                    self.dma.mm2s.transfer(buf.physical_address + offset, min(piece, nbytes - offset))
                    self._wait_mm2s(deadline)
                self._wait_weights_ack(deadline)
            except AcceleratorError as e:
                self._fail(e)
        finally:
            if not own:
                getattr(buf, "freebuffer", lambda: None)()
        out = self._out[0][:ack_words]
        out.invalidate()
        try:
            ack = hls_stream.parse_ack(int(out[0]))
        except hls_stream.StreamFormatError as e:
            self._fail(WeightLoadError(f"weight load: {e}", channel="S2MM"))
        if int(ack["status"]) != hls_stream.ACK_OK:
            self._fail(
                WeightLoadError(
                    f"the accelerator rejected the weight stream header (ack status {int(ack['status'])}); "
                    "its weights are unchanged",
                    channel="S2MM",
                )
            )
        if int(ack["words"]) != expected_words & 0xFFFF or int(ack["checksum"]) != expected_checksum:
            self._fail(
                WeightLoadError(
                    f"weight load acknowledged {int(ack['words'])} words, checksum 0x{int(ack['checksum']):04x}; "
                    f"sent {expected_words & 0xFFFF} words (low 16 bits), checksum 0x{expected_checksum:04x}",
                    channel="S2MM",
                )
            )
        return ack

    def _wait_weights_ack(self, deadline: float) -> None:
        s2mm = self.dma.s2mm
        while True:
            sr = s2mm.status
            if sr & DMASR_IDLE and not sr & DMASR_ERRORS:
                break
            if sr & (DMASR_ERRORS | DMASR_HALTED):
                raise DmaError(
                    f"S2MM stopped during the weight load: DMASR {describe_status(sr)}", channel="S2MM", status=sr
                )
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"S2MM did not receive the weight-load acknowledgement: DMASR {describe_status(sr)}; "
                    f"accelerator CTRL 0x{self.core.control:02x}",
                    channel="S2MM",
                    status=sr,
                    bytes_moved=0,
                    bytes_expected=s2mm.bytes_expected,
                )
        got = s2mm.received()
        if got != s2mm.bytes_expected:
            raise ShortTransfer(
                f"S2MM received {got} of {s2mm.bytes_expected} acknowledgement bytes",
                channel="S2MM",
                status=sr,
                bytes_moved=got,
                bytes_expected=s2mm.bytes_expected,
            )

    def close(self) -> None:
        """Free the buffers (waits for a call in progress); later calls raise `OverlayClosed`.
        Closing twice is harmless."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            for buf in self._in + self._out:
                getattr(buf, "freebuffer", lambda: None)()  # pynq >= 2.7; older ones free on collection
