"""AWQ-style activation-aware scaling (Lin et al., 2023) for weight-only integer quantization.

The few input channels that carry large activations matter most to a layer's output; scaling
their weight columns up by ``s`` before quantization (and the activations down by ``1/s`` at run
time, through ``QuantLinear.smooth``) gives them finer effective steps. ``s = rms(x)^alpha`` with
alpha searched on a grid for the lowest output error.

Written here because the AWQ libraries (autoawq, llm-compressor's AWQModifier) need CUDA kernels
or fold the scales into model-specific preceding layers; keeping ``1/s`` as an explicit per-layer
multiply works for any nn.Linear. The output error is measured through the layer's Hessian
``H ~ X^T X`` (``tr(dW H dW^T)`` = squared output error over every calibration row), which GPTQ
collects anyway, and the channel RMS is ``sqrt(diag(H) / 2)`` — so AWQ needs no extra pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FakeQuantize = Callable[["torch.Tensor"], "torch.Tensor"]


def output_error(delta: torch.Tensor, hessian: torch.Tensor) -> float:
    """Squared output error of a weight change ``delta`` [N, K] over the rows behind ``hessian``."""
    delta = delta.float()
    return float(((delta @ hessian.float()) * delta).sum())


def awq_smoothing(weight: torch.Tensor | list[torch.Tensor], hessian: torch.Tensor,
                  fake_quantize: FakeQuantize, grid: int = 20) -> torch.Tensor | None:
    """The activation factor ``1/s`` of the best alpha, or None when no scaling beats alpha = 0.

    ``weight`` may be the weights of several layers reading the same input (hence one Hessian):
    they then share the factor chosen for their summed output error.
    """
    import torch

    weights = [w.detach().float() for w in (weight if isinstance(weight, list) else [weight])]
    h = hessian.float()
    rms = (torch.diag(h).clamp(min=0) / 2).sqrt()
    live = rms > 0

    def error(s: torch.Tensor | None) -> float:
        if s is None:
            return sum(output_error(fake_quantize(w) - w, h) for w in weights)
        return sum(output_error(fake_quantize(w * s) / s - w, h) for w in weights)

    best_err, best = error(None), None
    for alpha in torch.linspace(0, 1, grid + 1)[1:].tolist():
        s = torch.where(live, rms.clamp(min=1e-8) ** alpha, torch.ones_like(rms))
        s = s / (s[live].max() * s[live].min()).sqrt()  # centred around 1: keeps the range balanced
        err = error(s)
        if err < best_err:
            best_err, best = err, 1.0 / s
    return best
