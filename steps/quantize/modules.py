"""Quantized drop-in replacements for nn.Linear (imported only by the torch backend: imports torch).

* :class:`QuantLinear` keeps packed integer weights + scales (+ zero-points) as buffers in
  ``modelpress.kernels.packing``'s layout and multiplies through ``modelpress.kernels.dispatch``
  (Triton on CUDA, PyTorch references / oneDNN ops on CPU). A model saved with ``torch.save`` or
  through its ``state_dict`` stays quantized when loaded again.
* :class:`Fp8Linear` keeps E4M3 weights with per-tensor or per-row scales; activations are cast
  to E4M3 per tensor/row at run time. ``torch._scaled_mm`` on GPUs that have fp8 tensor cores
  (compute capability >= 8.9), the same math emulated in fp32 elsewhere.
* :class:`CastLinear`-style casting is done with hooks (:func:`cast_module`).

ONNX export: QuantLinear emits ``DequantizeLinear`` on constant integer weights (QDQ, opset 13
per-axis; groups as rows of a reshaped ``[N*G, g]`` tensor) followed by ``MatMul``, which ONNX
Runtime and TensorRT consume. Fp8Linear exports its dequantized fp32 weight (E4M3
DequantizeLinear needs opset 19; the exporter runs opset 17).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelpress.kernels import dispatch
from modelpress.kernels.packing import unpack_int4
from modelpress.steps.quantize.qmath import Grid, dequantize_storage

FP8_MAX = 448.0  # largest finite float8_e4m3fn


class QuantLinear(nn.Module):
    # Buffers, declared so that type checkers see tensors (nn.Module.__getattr__ says Tensor | Module).
    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    bias: torch.Tensor | None
    smooth: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bits: int, symmetric: bool,
                 group_size: int | None, act: str = "none", has_bias: bool = True,
                 has_zeros: bool = False, has_smooth: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.symmetric, self.group_size, self.act = bits, symmetric, group_size, act
        groups = 1 if group_size is None else in_features // group_size
        packed_k = in_features if bits == 8 else in_features // 2
        code_dtype = torch.int8 if bits == 8 else torch.uint8
        self.register_buffer("qweight", torch.zeros(out_features, packed_k, dtype=code_dtype))
        self.register_buffer("scales", torch.ones(out_features, groups))
        self.register_buffer("zeros", torch.zeros(out_features, groups, dtype=code_dtype) if has_zeros else None)
        self.register_buffer("bias", torch.zeros(out_features) if has_bias else None)
        self.register_buffer("smooth", torch.ones(in_features) if has_smooth else None)

    @classmethod
    def build(cls, linear: nn.Linear, storage: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
              grid: Grid, group_size: int | None, act: str,
              smooth: torch.Tensor | None = None) -> QuantLinear:
        qweight, scales, zeros = storage
        module = cls(linear.in_features, linear.out_features, grid.bits, grid.symmetric,
                     group_size if group_size != linear.in_features else None, act,
                     linear.bias is not None, zeros is not None, smooth is not None)
        module.qweight.copy_(qweight)
        module.scales.copy_(scales)
        if zeros is not None and module.zeros is not None:  # the buffer exists exactly when zeros do
            module.zeros.copy_(zeros)
        if linear.bias is not None and module.bias is not None:
            module.bias.copy_(linear.bias.detach())
        if smooth is not None and module.smooth is not None:
            module.smooth.copy_(smooth)
        return module.to(linear.weight.device)

    @property
    def grid(self) -> Grid:
        return Grid(self.bits, self.symmetric)

    def dequantized_weight(self) -> torch.Tensor:
        """The float weight this module multiplies by (smoothing folded back out)."""
        w = dequantize_storage(self.qweight, self.scales, self.zeros, self.grid)
        return w if self.smooth is None else w * self.smooth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            _EXPORT_PAYLOADS[id(self)] = _untraced(lambda: _QDQPayload(self))
            return _QDQLinear.apply(x, id(self))
        if self.smooth is not None:
            x = x * self.smooth.to(x.dtype)
        if self.act == "int8":
            return dispatch.w8a8_linear(x, self.qweight, self.scales, self.zeros, self.bias)
        if self.bits == 8:
            return dispatch.w8a16_linear(x, self.qweight, self.scales, self.zeros, self.bias, self.group_size)
        return dispatch.w4a16_linear(x, self.qweight, self.scales, self.zeros, self.bias,
                                     self.group_size or self.in_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, bits={self.bits}, "
                f"group={self.group_size or 'channel'}, sym={self.symmetric}, act={self.act}")


# The TorchScript exporter hands only tensors and plain numbers to a symbolic; the constants are
# looked up here by the module's id (set right before the traced call, removed by the symbolic).
_EXPORT_PAYLOADS: dict[int, _QDQPayload] = {}


def _untraced(build):
    """Run ``build`` outside the exporter's trace: its tensors must become constants, not graph ops."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        return build()
    finally:
        torch._C._set_tracing_state(state)


class _QDQPayload:
    """Numbers the ONNX symbolic needs as constants (not traced tensors)."""

    def __init__(self, module: QuantLinear):
        grid = module.grid
        codes = module.qweight if grid.bits == 8 else unpack_int4(module.qweight)
        n, k = codes.shape
        g = module.group_size or k
        zero = (torch.full_like(module.scales, float(grid.implied_zero)) if module.zeros is None
                else module.zeros.float())
        code_dtype = torch.int8 if grid.bits == 8 else torch.uint8
        self.codes = codes.reshape(n * (k // g), g).to(code_dtype).contiguous()
        self.scales = module.scales.float().reshape(-1).contiguous()
        self.zeros = zero.reshape(-1).to(code_dtype).contiguous()
        self.shape = torch.tensor([n, k], dtype=torch.int64)
        self.bias = None if module.bias is None else module.bias.detach().float()
        self.smooth = None if module.smooth is None else module.smooth.detach().float()
        self.weight = module.dequantized_weight() if module.smooth is None else \
            dequantize_storage(module.qweight, module.scales, module.zeros, grid)


class _QDQLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, key: int) -> torch.Tensor:
        p = _EXPORT_PAYLOADS[key]
        if p.smooth is not None:
            x = x * p.smooth
        return F.linear(x, p.weight, p.bias)

    @staticmethod
    def symbolic(g, x, key: int):
        p = _EXPORT_PAYLOADS.pop(key)
        def const(t: torch.Tensor):
            return g.op("Constant", value_t=t)

        w = g.op("DequantizeLinear", const(p.codes), const(p.scales), const(p.zeros), axis_i=0)
        w = g.op("Reshape", w, const(p.shape))
        if p.smooth is not None:
            x = g.op("Mul", x, const(p.smooth))
        y = g.op("MatMul", x, g.op("Transpose", w, perm_i=[1, 0]))
        return y if p.bias is None else g.op("Add", y, const(p.bias))


class Fp8Linear(nn.Module):
    weight_fp8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None
    smooth: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, per_row: bool, act: str,
                 has_bias: bool = True, has_smooth: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.per_row, self.act = in_features, out_features, per_row, act
        self.register_buffer("weight_fp8", torch.zeros(out_features, in_features, dtype=torch.float8_e4m3fn))
        self.register_buffer("weight_scale", torch.ones(out_features if per_row else 1, 1))
        self.register_buffer("bias", torch.zeros(out_features) if has_bias else None)
        self.register_buffer("smooth", torch.ones(in_features) if has_smooth else None)

    @classmethod
    def build(cls, linear: nn.Linear, per_row: bool, act: str,
              smooth: torch.Tensor | None = None) -> Fp8Linear:
        w = linear.weight.detach().float()
        if smooth is not None:
            w = w / smooth  # the activation is multiplied by `smooth` at run time
        module = cls(linear.in_features, linear.out_features, per_row, act,
                     linear.bias is not None, smooth is not None)
        w_fp8, scale = to_fp8(w, per_row)
        module.weight_fp8.copy_(w_fp8)
        module.weight_scale.copy_(scale)
        if linear.bias is not None and module.bias is not None:
            module.bias.copy_(linear.bias.detach())
        if smooth is not None and module.smooth is not None:
            module.smooth.copy_(smooth)
        return module.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None:
            x = x * self.smooth.to(x.dtype)
        if self.act == "fp8" and _native_fp8(x):
            try:
                return self._scaled_mm(x)
            except RuntimeError:  # shapes/dtypes _scaled_mm rejects (e.g. K not a multiple of 16)
                pass
        w = self.weight_fp8.float() * self.weight_scale
        if self.act == "fp8":  # emulate: the same E4M3 rounding of activations, fp32 accumulation
            x_fp8, x_scale = to_fp8(x.reshape(-1, x.shape[-1]).float(), self.per_row)
            x = (x_fp8.float() * x_scale).reshape(x.shape)
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), w, bias).to(x.dtype)

    def _scaled_mm(self, x: torch.Tensor) -> torch.Tensor:
        x2d = x.reshape(-1, x.shape[-1])
        x_fp8, x_scale = to_fp8(x2d.float(), self.per_row)
        out_dtype = x.dtype if x.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
        w_scale = self.weight_scale.reshape(1, -1) if self.per_row else self.weight_scale.reshape(())
        out = torch._scaled_mm(x_fp8, self.weight_fp8.t(), scale_a=x_scale if self.per_row else x_scale.reshape(()),
                               scale_b=w_scale, bias=None, out_dtype=out_dtype)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, per_row={self.per_row}, act={self.act}"


def to_fp8(x: torch.Tensor, per_row: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """E4M3 values and fp32 scales ([rows, 1] or [1, 1]) with ``x ≈ fp8 * scale``."""
    absmax = x.abs().amax(dim=-1, keepdim=True) if per_row else x.abs().amax().reshape(1, 1)
    scale = torch.where(absmax > 0, absmax / FP8_MAX, torch.ones_like(absmax)).float()
    return (x / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


def _native_fp8(x: torch.Tensor) -> bool:
    return (x.is_cuda and hasattr(torch, "_scaled_mm")
            and torch.cuda.get_device_capability(x.device) >= (8, 9))


def cast_module(module: nn.Module, dtype: torch.dtype) -> None:
    """Store a layer's parameters in fp16/bf16; inputs are cast in and outputs back out by hooks."""
    module.to(dtype)
    module.register_forward_pre_hook(_cast_inputs)
    module.register_forward_hook(_cast_output_to_fp32)


def _cast_inputs(module: nn.Module, args: tuple) -> tuple:
    dtype = next(module.parameters()).dtype
    return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _cast_output_to_fp32(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.float() if torch.is_tensor(output) and output.is_floating_point() else output
