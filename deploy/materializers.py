"""ZenML materializer for ONNX graphs, so exported models flow between steps as artifacts."""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar

import onnx
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
