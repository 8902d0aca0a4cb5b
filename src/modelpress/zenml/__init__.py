"""modelpress's public ZenML steps: compress, gate, register and promote inside your own pipeline.

    from modelpress.zenml import accuracy_gate, evaluate, promote, prune, quantize, register

Each step takes your artifacts as they are: the ``torch.nn.Module`` (or ONNX graph) your own
step returned, your ``pandas.DataFrame`` with your column names, the task in recipe syntax
(``{"name": "tabular-classification", "label": "diagnosis", "features": "*"}``) and the
technique's options as its pydantic config class or a plain dict. Parameters are checked when
the pipeline is composed (or compiled from a run configuration), each bad one in one line
naming the step and the field. README.md, "Use the steps in your own pipeline", has the whole
example; ``modelpress run`` compiles a recipe into these same steps (``modelpress.pipelines``).

Importing this module imports ZenML and PyTorch; the CLI imports it only to run a pipeline.
"""

from modelpress.zenml.checked import StepParameterError, install_error_hook
from modelpress.zenml.evaluation import accuracy_gate, evaluate
from modelpress.zenml.materializers import RecordMaterializer
from modelpress.zenml.registry import export_build, promote, register
from modelpress.zenml.techniques import (
    TECHNIQUE_STEPS,
    compress,
    distill,
    finetune,
    lowrank,
    prune,
    quantize,
    weight_quantize,
)

install_error_hook()

__all__ = [
    "TECHNIQUE_STEPS",
    "RecordMaterializer",
    "StepParameterError",
    "accuracy_gate",
    "compress",
    "distill",
    "evaluate",
    "export_build",
    "finetune",
    "lowrank",
    "promote",
    "prune",
    "quantize",
    "register",
    "weight_quantize",
]
