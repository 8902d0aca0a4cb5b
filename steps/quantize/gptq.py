"""GPTQ (Frantar et al., 2022): quantize a weight column by column, pushing each column's error
onto the columns not yet quantized through the inverse Hessian of the layer's inputs.

Written here because no installed library does GPTQ for plain nn.Linear on CPU (ONNX Runtime's
needs neural-compressor; optimum's needs auto-gptq/CUDA). The algorithm follows the reference
implementation: Cholesky of the damped inverse Hessian, lazy block updates of 128 columns, group
parameters taken from the already-updated weights when a group starts (or, with act-order, from
the original weights: its "static groups"), and optionally a clipped range searched per group
for the lowest output error through the group's block of the Hessian.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.steps.quantize.qmath import Grid, dequantize_codes, group_params, quantize_codes, searched_group_params

if TYPE_CHECKING:
    import torch


class HessianAccumulator:
    """Running ``H = 2/n * sum x x^T`` over a layer's input rows (fp64 for long sums)."""

    def __init__(self, features: int):
        self.features = features
        self.h: torch.Tensor | None = None  # allocated on the device of the first rows
        self.rows = 0

    def add(self, x: torch.Tensor) -> None:
        import torch

        x = x.reshape(-1, x.shape[-1]).float()
        if self.h is None:  # a normal tensor even under inference mode: GPTQ may reuse it in place
            with torch.inference_mode(False):
                self.h = torch.zeros(self.features, self.features, dtype=torch.float64, device=x.device)
        self.h += (x.T @ x).double()  # one batch in fp32 (fast), the running sum in fp64
        self.rows += x.shape[0]

    def value(self) -> torch.Tensor:
        import torch

        if self.h is None:
            return torch.zeros(self.features, self.features, dtype=torch.float64)
        return (2.0 / max(self.rows, 1)) * self.h

    def take(self) -> torch.Tensor:
        """``value()`` in the accumulator's own memory, which it gives up (no in x in copy)."""
        if self.h is None:
            return self.value()
        h, self.h = self.h.mul_(2.0 / max(self.rows, 1)), None
        return h


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, grid: Grid, group_size: int | None,
                  per_tensor: bool = False, block_size: int = 128, damp: float = 0.01,
                  act_order: bool = False, clip: bool = False, refit: bool = False,
                  overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes [N, K], scales [N, G], zeros [N, G]) like ``qmath.quantize_rtn``, error-compensated.

    ``act_order`` quantizes the columns with the largest Hessian diagonal (the most active inputs)
    first, while many columns remain to absorb their error. Groups then stay contiguous
    in the *original* column order ("static groups": their ranges are taken from the weights
    before any update), so the storage layout and kernels are those of plain per-group weights.
    ``clip`` searches a clipped range per group (``qmath.searched_group_params``) for the lowest
    output error through the group's diagonal block of the Hessian (its diagonal alone for groups
    wider than ``FULL_BLOCK_LIMIT``, where the block product would cost more than GPTQ itself).
    ``overwrite``: ``hessian`` (fp64, on ``w``'s device) may be used as scratch, saving a copy; pass
    it as a temporary (no name of the caller's holding it) and it is freed once permuted.

    Memory: the in x in fp64 temporaries are freed as soon as the next one exists, so at most two
    are live at a time: for a 5632-wide layer each is 254 MB.
    """
    import torch

    original = w.detach().float()
    w = original.clone()
    n, k = w.shape
    device = w.device
    g = k if group_size is None else group_size
    h = hessian.to(device=device, dtype=torch.float64, copy=not overwrite)
    del hessian  # with overwrite, h is now the only name for it: the permuted copy below replaces it
    dead = torch.diag(h) == 0  # inputs that never fire carry no information: zero their weights
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h.diagonal().add_(damp * torch.diag(h).mean())  # in place: an eye(k) would be one more k x k

    params = _range_rule(h, g, grid, per_tensor, clip)
    static = act_order or g == k  # per-channel/tensor ranges always come from the whole original row
    scales, zeros = torch.zeros(n, k // g, device=device), torch.zeros(n, k // g, device=device)
    if static:
        for j in range(k // g):
            scales[:, j], zeros[:, j] = params(w[:, j * g:(j + 1) * g], j)
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(k, device=device)
    w, h = w[:, perm], h[perm[:, None], perm[None, :]]  # one gather (h[perm][:, perm] makes two)
    group_of = perm // g  # the (original-order) group of each permuted column
    factor = torch.linalg.cholesky(h)
    del h
    inverse = torch.cholesky_inverse(factor)
    del factor
    h_inv = torch.linalg.cholesky(inverse, upper=True).float()
    del inverse

    codes = torch.zeros_like(w)
    if not static:  # the lazy block must not split a group whose range is taken when it starts
        block_size = max(block_size - block_size % g, g)
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        w1, err1, hinv1 = w[:, i1:i2].clone(), torch.zeros(n, i2 - i1, device=device), h_inv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            group = int(group_of[col])
            if not static and col % g == 0:  # dynamic groups: range from the already-updated weights
                scales[:, group], zeros[:, group] = params(w1[:, i:i + g], group)
            scale, zero = scales[:, group], zeros[:, group]
            q = quantize_codes(w1[:, i:i + 1], scale, zero, grid)
            codes[:, col] = q[:, 0]
            err = (w1[:, i] - dequantize_codes(q, scale, zero)[:, 0]) / hinv1[i, i]
            w1[:, i:] -= err[:, None] @ hinv1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ h_inv[i1:i2, i2:]
    unperm = torch.argsort(perm)
    codes = codes[:, unperm]
    if refit and not per_tensor:
        del w1, err1, hinv1
        h = _hessian_from(h_inv, unperm, damp)
        del h_inv
        scales = refit_scales(original, codes, scales, zeros, h, g)
    return codes, scales, zeros


def _hessian_from(h_inv: torch.Tensor, unperm: torch.Tensor, damp: float) -> torch.Tensor:
    """The undamped Hessian (original column order) back from GPTQ's upper Cholesky factor of its
    damped, permuted inverse: one k x k at a time instead of keeping a copy of H throughout."""
    import torch

    h = torch.cholesky_inverse(h_inv, upper=True)[unperm[:, None], unperm[None, :]]
    h.diagonal().sub_(damp / (1 + damp) * h.diagonal().mean())
    return h


def refit_scales(w: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                 h: torch.Tensor, g: int, rows_per_solve: int = 64) -> torch.Tensor:
    """Per-row least-squares scales for GPTQ's (fixed) codes: ``min_s tr((W - Q_s) H (W - Q_s)^T)``.

    GPTQ picks each group's scale before its columns are rounded and error-compensated; once the
    codes are known, the scales that minimise the layer's output error solve a G x G linear system
    per row (``Q_s = (codes - zeros) * s`` is linear in the row's G scales). The objective is the
    one GPTQ itself minimises, and the old scales are a feasible point, so it never gets worse; a
    row whose solution has a non-positive or non-finite scale keeps its old ones.
    """
    import torch

    n, k = w.shape
    groups = k // g
    centred = codes - zeros.repeat_interleave(g, 1)  # [N, K]
    target = ((w.float() @ h) * centred).reshape(n, groups, g).sum(-1)  # [N, G]
    h_rows = h.reshape(groups, g, k)
    fitted = scales.clone()
    for r0 in range(0, n, rows_per_solve):
        c = centred[r0:r0 + rows_per_solve].reshape(-1, groups, g)
        ch = torch.einsum("rai,ail->ral", c, h_rows).reshape(-1, groups, groups, g)
        normal = torch.einsum("rabj,rbj->rab", ch, c)  # [r, G, G]
        normal.diagonal(dim1=1, dim2=2).add_(1e-8 * normal.diagonal(dim1=1, dim2=2).mean() + 1e-12)
        solved = torch.linalg.solve(normal, target[r0:r0 + rows_per_solve].unsqueeze(-1)).squeeze(-1)
        usable = (torch.isfinite(solved) & (solved > 0)).all(-1)
        fitted[r0:r0 + rows_per_solve][usable] = solved[usable]
    return fitted


FULL_BLOCK_LIMIT = 256  # widest group whose whole Hessian block weighs the range search


def _range_rule(h: torch.Tensor, g: int, grid: Grid, per_tensor: bool, clip: bool):
    """``params(columns, group) -> (scale, zero)``; with ``clip``, searched against the Hessian of
    the group's columns (original order; copied now, as ``h`` is permuted and freed later)."""
    if not clip:
        return lambda columns, group: group_params(columns, grid, per_tensor)
    k = h.shape[0]
    if g <= FULL_BLOCK_LIMIT:
        blocks = [h[j * g:(j + 1) * g, j * g:(j + 1) * g].float() for j in range(k // g)]
    else:
        blocks = list(h.diagonal().float().split(g))
    return lambda columns, group: searched_group_params(columns, grid, per_tensor, hessian=blocks[group])
