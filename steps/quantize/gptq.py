"""GPTQ (Frantar et al., 2022): quantize a weight column by column, pushing each column's error
onto the columns not yet quantized through the inverse Hessian of the layer's inputs.

Written here because no installed library does GPTQ for plain nn.Linear on CPU (ONNX Runtime's
needs neural-compressor; optimum's needs auto-gptq/CUDA). The algorithm follows the reference
implementation: Cholesky of the damped inverse Hessian, lazy block updates of 128 columns, and
group parameters taken from the already-updated weights when a group starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .qmath import Grid, dequantize_codes, group_params, quantize_codes

if TYPE_CHECKING:
    import torch


class HessianAccumulator:
    """Running ``H = 2/n * sum x x^T`` over a layer's input rows (fp64 for long sums)."""

    def __init__(self, features: int):
        import torch

        self.h = torch.zeros(features, features, dtype=torch.float64)
        self.rows = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).double()
        self.h += x.T @ x
        self.rows += x.shape[0]

    def value(self) -> torch.Tensor:
        return (2.0 / max(self.rows, 1)) * self.h


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, grid: Grid, group_size: int | None,
                  per_tensor: bool = False, block_size: int = 128,
                  damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes [N, K], scales [N, G], zeros [N, G]) like ``qmath.quantize_rtn``, error-compensated."""
    import torch

    w = w.detach().float().clone()
    n, k = w.shape
    g = k if group_size is None else group_size
    h = hessian.double().clone()
    dead = torch.diag(h) == 0  # inputs that never fire carry no information: zero their weights
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.diag(h).mean() * torch.eye(k, dtype=h.dtype)
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()

    codes = torch.zeros_like(w)
    scales, zeros = torch.zeros(n, k // g), torch.zeros(n, k // g)
    if g == k:  # per-channel / per-tensor: parameters from the whole original row, as in GPTQ
        scales[:, 0], zeros[:, 0] = group_params(w, grid, per_tensor)
    block_size = max(block_size - block_size % g, g) if g < k else block_size
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        w1, err1, hinv1 = w[:, i1:i2].clone(), torch.zeros(n, i2 - i1), h_inv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if g < k and col % g == 0:
                scales[:, col // g], zeros[:, col // g] = group_params(w1[:, i:i + g], grid)
            scale, zero = scales[:, col // g], zeros[:, col // g]
            q = quantize_codes(w1[:, i:i + 1], scale, zero, grid)
            codes[:, col] = q[:, 0]
            err = (w1[:, i] - dequantize_codes(q, scale, zero)[:, 0]) / hinv1[i, i]
            w1[:, i:] -= err[:, None] @ hinv1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ h_inv[i1:i2, i2:]
    return codes, scales, zeros
