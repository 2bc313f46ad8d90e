"""`onnxruntime`: the float32 network as an ONNX graph run by onnxruntime's CPU provider, the
peer that `bench` measures cpu-float against.

The graph is built with `onnx.helper` from the same weights archive and `network.LAYERS` (no
tensorflow needed): uint8 images -> Cast -> Mul by 2^-PIXEL_FRAC_BITS -> per conv layer Conv
(with bias) -> Relu -> MaxPool -> Flatten -> per dense layer Gemm (with bias) [-> Relu].  The
first dense layer's rows are reordered from Keras's channels-last flattening to the NCHW order
ONNX flattens in, so no Transpose runs.  The session uses all graph optimisations (it fuses
Conv with Relu and picks its own blocked layouts) and `threads` intra-op threads.

Needs the optional extra: pip install 'lenet5-pynq[onnx]'; BackendUnavailable says which
package is missing otherwise.  `predict` may be called from several threads at once
(onnxruntime's InferenceSession.run is thread-safe).
"""

from __future__ import annotations

import numpy as np

from .. import network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images

OPSET = 13  # Gemm, Conv, MaxPool, Cast as of opset 13: what every onnxruntime >= 1.16 runs


def _modules():
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise BackendUnavailable("onnx is not installed (pip install 'lenet5-pynq[onnx]')") from None
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed (pip install 'lenet5-pynq[onnx]')") from None
    return onnx, helper, onnxruntime


def build_graph(params: dict[str, np.ndarray]):
    """The float32 LeNet-5 as an onnx.ModelProto: input "images" uint8 [N, 28, 28], output
    "logits" float32 [N, 10]."""
    onnx, helper, _ = _modules()
    tensor, node = onnx.numpy_helper.from_array, helper.make_node
    initializers = [tensor(np.array(2.0**-network.PIXEL_FRAC_BITS, np.float32), "pixel_scale")]
    shape = [-1, network.INPUT_CHANNELS, network.INPUT_HEIGHT, network.INPUT_WIDTH]
    initializers.append(tensor(np.array(shape, np.int64), "nchw"))
    nodes = [
        node("Cast", ["images"], ["pixels"], to=onnx.TensorProto.FLOAT),
        node("Mul", ["pixels", "pixel_scale"], ["scaled"]),
        node("Reshape", ["scaled", "nchw"], ["x0"]),
    ]
    x = "x0"
    for s in network.layer_shapes():
        layer = s.layer
        kernel = params[f"{layer.name}/kernel"].astype(np.float32)
        bias = params[f"{layer.name}/bias"].astype(np.float32)
        w, b, out = f"{layer.name}_w", f"{layer.name}_b", f"{layer.name}_out"
        if isinstance(layer, network.Conv):
            initializers.append(tensor(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), w))  # (out, in, kh, kw)
            initializers.append(tensor(bias, b))
            nodes += [
                node("Conv", [x, w, b], [f"{layer.name}_conv"], kernel_shape=[layer.kernel] * 2),
                node("Relu", [f"{layer.name}_conv"], [f"{layer.name}_relu"]),
                node("MaxPool", [f"{layer.name}_relu"], [out], kernel_shape=[layer.pool] * 2, strides=[layer.pool] * 2),
            ]
        else:
            if len(s.in_shape) == 3:  # the first dense layer: flatten NCHW, rows reordered to match
                h, wd, c = s.in_shape
                kernel = kernel.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
                nodes.append(node("Flatten", [x], [f"{layer.name}_in"], axis=1))
                x = f"{layer.name}_in"
            initializers += [tensor(np.ascontiguousarray(kernel), w), tensor(bias, b)]
            gemm = f"{layer.name}_gemm" if layer.relu else out
            nodes.append(node("Gemm", [x, w, b], [gemm]))
            if layer.relu:
                nodes.append(node("Relu", [gemm], [out]))
        x = out
    nodes.append(node("Identity", [x], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "lenet5",
        [
            helper.make_tensor_value_info(
                "images", onnx.TensorProto.UINT8, ["N", network.INPUT_HEIGHT, network.INPUT_WIDTH]
            )
        ],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", network.NUM_CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lenet5_pynq")
    model.ir_version = min(model.ir_version, 8)  # the IR of onnxruntime 1.16, the oldest the extra allows
    onnx.checker.check_model(model)
    return model


class OnnxRuntimeBackend(Backend):
    """LeNet-5 in onnxruntime on the CPU (float logits, logit_scale 1).  `threads`: its
    intra_op_num_threads (None: onnxruntime's default, every core)."""

    name = "onnxruntime"
    exact = False

    def __init__(self, weights_path=None, params=None, threads: int | None = None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a whole number of at least 1 (or None), not {threads!r}")
        _, _, ort = _modules()
        params = weights.load(weights_path)[0] if params is None else weights.check(params, "params")
        self.threads = threads
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        self.version = f"onnxruntime {ort.__version__}"  # bench records it in each row
        self._session = ort.InferenceSession(
            build_graph(params).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def logits(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, network.NUM_CLASSES), np.float32)
        return self._session.run(["logits"], {"images": np.ascontiguousarray(images, np.uint8)})[0]

    def predict(self, images) -> Prediction:
        logits = self.logits(check_images(images))
        return Prediction(logits.argmax(axis=1), logits, 1.0)
