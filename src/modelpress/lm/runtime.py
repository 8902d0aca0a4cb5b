"""The runtime a causal LM's speed is measured on: the one it is deployed with, named.

A weight-quantized model (modules holding a packed ``qweight`` buffer, ``steps/quantize/modules``)
multiplies through ``modelpress.kernels.dispatch``: Triton on CUDA, and on CPU torch's packed
ops (``_weight_int4pack_mm_for_cpu``, ``_weight_int8pack_mm``), which take bf16 activations only.
Evaluated with fp32 activations it runs the dequantizing reference instead, a path nobody
deploys (SmolLM2 int4 g64 decoded at 0.18x its fp32 baseline that way). So a quantized model is
timed as it ships: a copy with its float tensors in bf16 (``deploy_form``), and the path it took
is observed, not assumed (``observe``): one forward under the profiler counts torch's packed-op
events and the dispatch's reference event (``REFERENCE_EVENT``). The label (``runtime_label``)
goes with every speed figure; a layer still on the reference says so there.

A model that is not quantized (the fp32 baseline, a bf16 cast) is timed as it is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the profiler event ``modelpress.kernels.dispatch`` records around each dequantizing reference matmul
REFERENCE_EVENT = "modelpress::dequantizing_reference"
#: torch's packed CPU ops (profiler event name -> what the label calls them)
PACKED_OPS = {"aten::_weight_int4pack_mm_for_cpu": "int4 CPU kernel (_weight_int4pack_mm_for_cpu)",
              "aten::_weight_int8pack_mm": "int8 CPU kernel (_weight_int8pack_mm)",
              "aten::_int_mm": "int8 GEMM (_int_mm)"}
DEPLOY_DTYPE = "bfloat16"  # the activations torch's packed CPU ops and the Triton kernels take


@dataclass
class KernelPath:
    """What one forward ran: packed-op calls by label, and dequantizing reference matmuls."""

    kernels: dict[str, int] = field(default_factory=dict)
    reference: int = 0


def quantized_layers(model: nn.Module) -> int:
    """Modules holding packed integer weights (found by their buffer: this layer cannot import
    the quantization modules)."""
    return sum(1 for m in model.modules() if getattr(m, "qweight", None) is not None)


def deploy_form(model: nn.Module) -> nn.Module:
    """``model`` as it ships: a quantized model in fp32 gets a bf16 copy (its integer weights
    untouched), the kernels' activation dtype; anything else is returned as it is."""
    import torch

    floats = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not quantized_layers(model) or not floats or floats[0].dtype != torch.float32:
        return model
    return copy.deepcopy(model).to(getattr(torch, DEPLOY_DTYPE))


def observe(model: nn.Module, input_ids: torch.Tensor) -> KernelPath:
    """The kernels one forward of ``input_ids`` runs, seen by the profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    device = next(iter(model.parameters())).device
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        model(input_ids=input_ids.to(device), use_cache=False)
    path = KernelPath()
    for event in prof.events():
        if event.name == REFERENCE_EVENT:
            path.reference += 1
        elif event.name in PACKED_OPS:
            path.kernels[PACKED_OPS[event.name]] = path.kernels.get(PACKED_OPS[event.name], 0) + 1
    return path


def runtime_label(model: nn.Module, paths: dict[str, KernelPath]) -> str:
    """``torch <dtype> <device>``, then the kernels seen; a workload (``paths`` key: prefill,
    decode) that ran the dequantizing reference is named, as not the deployed speed."""
    parameter = next(iter(model.parameters()))
    dtype, device = str(parameter.dtype).removeprefix("torch."), parameter.device.type
    label = f"PyTorch {dtype} on {device.upper()}"
    layers = quantized_layers(model)
    if not layers:
        return label
    seen = sorted({k for p in paths.values() for k in p.kernels})
    if device == "cuda" and not any(p.reference for p in paths.values()):
        seen = ["Triton kernels"]  # the dispatch's only other path on CUDA
    if seen:
        label += ", " + " + ".join(seen)
    slow = [name for name, p in paths.items() if p.reference]
    if slow:
        label += (f"; {' and '.join(slow)} ran the dequantizing reference (no fast kernel for this "
                  "scheme there): not the deployed speed")
    return label


def as_shipped(model: nn.Module, prefill_ids: torch.Tensor) -> tuple[nn.Module, str]:
    """(the module to time, the runtime label its figures carry): the deploy form, with the path
    of a prefill of ``prefill_ids`` and of a one-token step (decode) observed."""
    shipped = deploy_form(model)
    if not quantized_layers(shipped):
        return shipped, runtime_label(shipped, {})
    paths = {"prefill": observe(shipped, prefill_ids), "decode": observe(shipped, prefill_ids[:1, :1])}
    return shipped, runtime_label(shipped, paths)
