"""ZenML materializers: ONNX graphs and PyTorch modules (TorchScript included) flow between steps."""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar

import onnx
import torch  # imported by pipeline steps only, never at CLI start-up
from zenml.enums import ArtifactType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

FILENAME = "model.onnx"


class OnnxModelMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (onnx.ModelProto,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> onnx.ModelProto:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, FILENAME)
            fileio.copy(os.path.join(self.uri, FILENAME), local)
            return onnx.load(local)

    def save(self, data: onnx.ModelProto) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, FILENAME)
            onnx.save(data, local)
            fileio.copy(local, os.path.join(self.uri, FILENAME), overwrite=True)

    def extract_metadata(self, data: onnx.ModelProto) -> dict[str, Any]:
        return {"size_mb": round(data.ByteSize() / 1e6, 3), "nodes": len(data.graph.node),
                "opset": max((o.version for o in data.opset_import), default=0)}


class TorchModuleMaterializer(BaseMaterializer):
    """PyTorch modules between steps, TorchScript included.

    ZenML's own PyTorch materializer pickles every module (cloudpickle), which a TorchScript
    module refuses (``Tried to serialize object __torch__...``); TorchScript is stored with
    ``torch.jit.save`` instead, and everything else as ZenML does it. Only modelpress's own
    artifacts are unpickled here (the user's file was loaded by its source).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (torch.nn.Module,)
    SKIP_REGISTRATION: ClassVar[bool] = True  # used where a step asks for it, not for every module
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL
    SCRIPTED, PICKLED = "model.torchscript", "entire_model.pt"

    def load(self, data_type: type[Any]) -> Any:
        scripted = os.path.join(self.uri, self.SCRIPTED)
        with tempfile.TemporaryDirectory() as tmp:
            name = self.SCRIPTED if fileio.exists(scripted) else self.PICKLED
            local = os.path.join(tmp, name)
            fileio.copy(os.path.join(self.uri, name), local)
            if name == self.SCRIPTED:
                return torch.jit.load(local, map_location="cpu")
            return torch.load(local, map_location="cpu", weights_only=False)  # nosec: our own artifact

    def save(self, data: Any) -> None:
        import cloudpickle

        scripted = isinstance(data, torch.jit.ScriptModule)
        name = self.SCRIPTED if scripted else self.PICKLED
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            if scripted:
                torch.jit.save(data, local)
            else:
                torch.save(data, local, pickle_module=cloudpickle)
            fileio.copy(local, os.path.join(self.uri, name), overwrite=True)

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"parameters": int(sum(p.numel() for p in data.parameters())),
                "torchscript": isinstance(data, torch.jit.ScriptModule)}

