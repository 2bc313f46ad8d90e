"""PyTorch peers of the GPU library, built from `network.LAYERS` with the shipped float weights:

* `torch`: float32, eager, NCHW (cuDNN; TF32 switched off, so it computes what Keras computes);
* `torch-fp16`: float16, eager, channels-last (cuDNN's fastest layout for half precision);
* `torch-compile`: float16 channels-last through `torch.compile` (Inductor).

The forward takes uint8 images already on the GPU and leaves classes and logits there; the
pixel scaling and the argmax are part of it, as they are of the CUDA library.  BackendUnavailable
when PyTorch or a CUDA GPU is missing.
"""

from __future__ import annotations

import numpy as np

from .. import network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images


def _torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("PyTorch is not installed") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("PyTorch sees no CUDA GPU")
    return torch


def build_module(torch, params: dict[str, np.ndarray]):
    """LeNet-5 as a torch.nn.Module taking uint8 [N, 28, 28] and returning float logits."""
    nn = torch.nn
    F = nn.functional
    shapes = network.layer_shapes()
    scale = 2.0**-network.PIXEL_FRAC_BITS

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList()
            for s in shapes:
                layer = s.layer
                k = params[f"{layer.name}/kernel"]
                b = params[f"{layer.name}/bias"]
                if isinstance(layer, network.Conv):
                    mod = nn.Conv2d(s.in_shape[2], layer.filters, layer.kernel)
                    mod.weight.data = torch.from_numpy(
                        np.ascontiguousarray(k.transpose(3, 2, 0, 1))
                    )  # (out, in, kh, kw)
                else:
                    mod = nn.Linear(s.fan_in, layer.units)
                    mod.weight.data = torch.from_numpy(np.ascontiguousarray(k.T))
                mod.bias.data = torch.from_numpy(np.ascontiguousarray(b))
                self.layers.append(mod)

        def forward(self, images):
            x = images.unsqueeze(1).to(self.layers[0].weight.dtype) * scale
            if self.layers[0].weight.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)
            for s, mod in zip(shapes, self.layers):
                layer = s.layer
                if isinstance(layer, network.Conv):
                    x = F.max_pool2d(F.relu(mod(x)), layer.pool)
                else:
                    if x.dim() == 4:
                        x = x.permute(0, 2, 3, 1).flatten(1)  # channels-last order, as Keras flattens
                    x = mod(x)
                    if layer.relu:
                        x = F.relu(x)
            return x

    return LeNet5()


class TorchBackend(Backend):
    """LeNet-5 in PyTorch on the GPU (float logits, logit_scale 1)."""

    exact = False

    def __init__(self, weights_path=None, dtype: str = "float32", channels_last: bool = False, compile: bool = False,
                 device: int = 0, params=None):  # fmt: skip
        torch = _torch()
        self.torch = torch
        params = weights.load(weights_path)[0] if params is None else weights.check(params, "params")
        self.name = (
            "torch-compile" if compile else ("torch" if dtype == "float32" else f"torch-{dtype.replace('float', 'fp')}")
        )
        self.dtype = getattr(torch, dtype)
        if self.dtype == torch.float32:
            # Keras's numbers: no TF32 in convolutions or matrix products (a process-wide switch).
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        self.device = torch.device("cuda", device)
        self.device_name = torch.cuda.get_device_name(self.device)
        module = build_module(torch, params).to(self.device, self.dtype).eval()
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module

        def forward(images):
            logits = module(images)
            return logits.argmax(dim=1), logits

        if compile:
            import torch._dynamo

            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            forward = torch.compile(forward, dynamic=False)
        self._forward = forward

    def forward_device(self, images):
        """uint8 [N, 28, 28] CUDA tensor -> (classes, logits) CUDA tensors; asynchronous."""
        with self.torch.inference_mode():
            return self._forward(images)

    def predict(self, images) -> Prediction:
        images = check_images(images)
        x = self.torch.from_numpy(images).to(self.device)
        classes, logits = self.forward_device(x)
        return Prediction(classes.cpu().numpy().astype(np.int64), logits.float().cpu().numpy(), 1.0)
