"""``source: mlflow``: a registered version's PyTorch model (``models:/name@champion``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.facts import SourceFacts
from modelpress.core.registry import register_source
from modelpress.sources.base import Source
from modelpress.tracking.model_registry import TORCH_ARTIFACT, resolve_version

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task

#: the version tag publish records the text tokenizer under (a folder or a package name)
TOKENIZER_TAG = "modelpress.tokenizer"


@register_source("mlflow")
class MlflowModel(Source):
    """The PyTorch model logged with a registered version (its ONNX sibling is what serving uses)."""

    source: Literal["mlflow"] = "mlflow"
    uri: str = Field(pattern=r"^(models:/[^/@\s]+(@[\w-]+|/\d+)|runs:/\w+/\S+)$")
    tokenizer: str | None = Field(None, description="text models: a tokenizer folder "
                                  "(default: the one recorded with the version)")

    summary = "a registered MLflow model version's PyTorch model (models:/NAME@ALIAS)"

    def facts(self) -> SourceFacts:
        return SourceFacts(tokenizer=self.tokenizer or self._recorded_tokenizer())

    def problems(self, task: type[Task] | None) -> list[str]:
        if self.task is None:
            return ["model.task: required for source mlflow (the task the registered model is for)"]
        return []

    def _recorded_tokenizer(self) -> str | None:
        if not self.uri.startswith("models:/"):
            return None

        try:
            return (resolve_version(self.uri).tags or {}).get(TOKENIZER_TAG)
        except Exception:  # noqa: BLE001 -- an unreachable registry is reported when the model loads
            return None

    def fingerprint(self) -> str:
        if not self.uri.startswith("models:/"):
            return self.uri

        try:
            resolved = resolve_version(self.uri)
        except Exception as exc:  # noqa: BLE001 -- MLflow raises several types for a missing version
            raise ModelpressError(f"model.uri {self.uri!r}: {str(exc).splitlines()[0]}") from None
        return f"{resolved.name}/{resolved.version}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            uri = self.uri
            if uri.startswith("models:/"):
                uri = f"runs:/{resolve_version(uri).run_id}/{TORCH_ARTIFACT}"
            return mlflow.pytorch.load_model(uri).eval()
        except MlflowException as exc:
            raise ModelpressError(f"model.uri {self.uri!r}: {exc.message}") from None
