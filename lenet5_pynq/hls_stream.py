"""The accelerator's AXI4-Stream formats, in one place: the export writes them into the HLS header,
the csim backend and the PYNQ driver pack and unpack with these helpers.

Classify (mode 0, `n` images):
    in:  64-bit beats, 8 pixels a beat: pixel i of an image (row-major) is byte i % 8 of beat i // 8,
         little-endian; 98 beats an image, images back to back.
    out: `RESULT_DTYPE` per image, 3 whole beats: the 10 logits as raw int16 words (real value =
         raw * 2**-frac of the spec's fc3 output format), the class index (first of equal maxima)
         and a zero pad word.  TLAST on the last beat of the batch only; no beat when n == 0.

Load weights (mode 1, `n` ignored):
    in:  one header beat, `WEIGHT_HEADER_DTYPE` = (magic 0x4C35, format 1, word count low, high),
         then the raw words of every layer in network order, each layer's kernel in Keras layout
         ((kh, kw, cin, cout) or (in, out)) flattened C-order, then its bias (cout); 4 int16 words
         a beat, word j in bits 16*(j%4).. of beat j//4, the last beat padded with zeros.
         Words are the raw integers in the spec's kernel and bias formats.
    out: one ack beat, `WEIGHT_ACK_DTYPE` = (magic, status, words low 16 bits, checksum), TLAST set.
         status 0: loaded; 1: header rejected (bad magic, format or count), weights unchanged.
         checksum = sum of the data words modulo 2**16 (padding excluded).
The load stream always has exactly `weight_stream_beats()` beats, whatever its header says, so the
DMA transfer always completes.
"""

from __future__ import annotations

import numpy as np

from . import network

BEAT_BYTES = 8
PIXELS_PER_BEAT = BEAT_BYTES
IMAGE_PIXELS = network.INPUT_HEIGHT * network.INPUT_WIDTH * network.INPUT_CHANNELS
IN_BEATS_PER_IMAGE = -(-IMAGE_PIXELS // PIXELS_PER_BEAT)

WORD_BYTES = 2
WORDS_PER_BEAT = BEAT_BYTES // WORD_BYTES
# Per image: 10 logits, the class, one pad word = 24 bytes = 3 beats.
RESULT_DTYPE = np.dtype([("logits", "<i2", (network.NUM_CLASSES,)), ("cls", "<u2"), ("pad", "<u2")])
OUT_BEATS_PER_IMAGE = RESULT_DTYPE.itemsize // BEAT_BYTES

MODE_CLASSIFY = 0
MODE_LOAD_WEIGHTS = 1

WEIGHT_MAGIC = 0x4C35  # "L5"
WEIGHT_FORMAT = 1
WEIGHT_HEADER_DTYPE = np.dtype([("magic", "<u2"), ("format", "<u2"), ("words_lo", "<u2"), ("words_hi", "<u2")])
WEIGHT_ACK_DTYPE = np.dtype([("magic", "<u2"), ("status", "<u2"), ("words", "<u2"), ("checksum", "<u2")])
ACK_OK = 0
ACK_BAD_HEADER = 1

assert RESULT_DTYPE.itemsize % BEAT_BYTES == 0 and WEIGHT_ACK_DTYPE.itemsize == BEAT_BYTES


class StreamFormatError(ValueError):
    """A beat buffer does not have the layout the accelerator uses."""


def pack_images(images: np.ndarray) -> np.ndarray:
    """uint64 beats [n * 98] for uint8 images [n, 28, 28]."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    n = len(images)
    flat = np.zeros((n, IN_BEATS_PER_IMAGE * BEAT_BYTES), np.uint8)
    flat[:, :IMAGE_PIXELS] = images.reshape(n, -1)
    return flat.view("<u8").reshape(-1).astype(np.uint64)


def unpack_images(beats: np.ndarray) -> np.ndarray:
    beats = np.ascontiguousarray(beats, dtype="<u8")
    if beats.size % IN_BEATS_PER_IMAGE:
        raise StreamFormatError(f"{beats.size} beats is not a whole number of {IN_BEATS_PER_IMAGE}-beat images")
    flat = beats.view(np.uint8).reshape(-1, IN_BEATS_PER_IMAGE * BEAT_BYTES)
    return flat[:, :IMAGE_PIXELS].reshape(-1, network.INPUT_HEIGHT, network.INPUT_WIDTH).copy()


def unpack_results(beats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes int64[n] and raw logits int16[n, 10] from the output beats."""
    beats = np.ascontiguousarray(beats, dtype="<u8")
    if beats.size % OUT_BEATS_PER_IMAGE:
        raise StreamFormatError(
            f"{beats.size} output beats is not a whole number of {OUT_BEATS_PER_IMAGE}-beat results"
        )
    rec = beats.view(RESULT_DTYPE)
    return rec["cls"].astype(np.int64), rec["logits"].astype(np.int16)


def pack_results(classes: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The beats the accelerator sends for these results (for simulated boards and tests)."""
    rec = np.zeros(len(classes), RESULT_DTYPE)
    rec["logits"] = logits
    rec["cls"] = classes
    return rec.view("<u8").astype(np.uint64)


def weight_words(layers) -> np.ndarray:
    """Raw int16 words of a quantized weight set (`fixedspec.quantize_params`), in stream order."""
    parts = []
    for shape, q in zip(network.layer_shapes(), layers):
        if q.name != shape.layer.name or q.kernel.shape != shape.weight_shape:
            raise StreamFormatError(f"layer {q.name} {q.kernel.shape} does not match the network's {shape.layer.name}")
        for raw, fmt in ((q.kernel, q.formats.kernel), (q.bias, q.formats.bias)):
            if fmt.width > 16:
                raise StreamFormatError(f"{q.name}: {fmt.ctype()} does not fit a 16-bit word")
            parts.append(np.asarray(raw, np.int64).reshape(-1))
    words = np.concatenate(parts)
    return (words & 0xFFFF).astype(np.uint16).view(np.int16)


def weight_word_count() -> int:
    return sum(int(np.prod(s.weight_shape)) + int(np.prod(s.bias_shape)) for s in network.layer_shapes())


def weight_stream_beats() -> int:
    return 1 + -(-weight_word_count() // WORDS_PER_BEAT)


def weight_checksum(words: np.ndarray) -> int:
    return int(np.asarray(words).astype(np.uint16).astype(np.int64).sum() & 0xFFFF)


def pack_weight_stream(layers) -> np.ndarray:
    """uint64 beats of the weight-load stream (header, then the words) for a quantized weight set."""
    words = weight_words(layers)
    n = len(words)
    header = np.zeros(1, WEIGHT_HEADER_DTYPE)
    header[0] = (WEIGHT_MAGIC, WEIGHT_FORMAT, n & 0xFFFF, n >> 16)
    padded = np.zeros(-(-n // WORDS_PER_BEAT) * WORDS_PER_BEAT, "<i2")
    padded[:n] = words
    return np.concatenate([header.view("<u8"), padded.view("<u8")]).astype(np.uint64)


def parse_ack(beat) -> np.void:
    """The fields of the ack beat; raises if it is not an ack."""
    rec = np.asarray([beat], dtype="<u8").view(WEIGHT_ACK_DTYPE)[0]
    if rec["magic"] != WEIGHT_MAGIC:
        raise StreamFormatError(
            f"ack beat 0x{int(beat):016x} has magic 0x{int(rec['magic']):04x}, expected 0x{WEIGHT_MAGIC:04x}"
        )
    return rec
