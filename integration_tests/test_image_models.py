"""Image files as users have them: real ZenML runs on the embedded stack, ending with @champion, on
a folder of digit PNGs (DIR/<class>/<n>.png) — a Hugging Face ViT folder with its
preprocessor_config.json, and a torchvision-style CNN (state dict + class) with a declared
``data.transform``. Each model was trained on other digits, preprocessed its user's way, so the
accuracy the pipeline measures on the folder shows that it preprocesses the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .helpers import mlflow_client, run_cli
from .image_models import NAMES, digit_pngs, hf_vit, user_cnn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("image-models")
    digit_pngs(folder)
    return folder


def champion_run(project: Path, name: str) -> tuple[str, dict[str, float], dict]:
    client = mlflow_client(project)
    version = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(version.run_id)
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "report/report.json")).read_text())
    return str(version.version), run.data.metrics, report


def test_hugging_face_vit_on_png_files_to_champion_and_served_with_its_processor(
        project: Path, modelpress_cli: str) -> None:
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
    from transformers import ViTImageProcessor

    from modelpress.deploy.pull import pull


    hf_vit(project)
    made = run_cli(modelpress_cli, project, "init", "digit-vit", "digits", "--name", "digits-vit", "--out", "vit.yaml")
    assert made.returncode == 0, made.output[-3000:]
    recipe = yaml.safe_load((project / "vit.yaml").read_text())
    assert recipe["model"] == {"source": "huggingface", "path": "digit-vit"}  # task from config.json
    assert recipe["data"] == {"source": "images", "path": "digits", "labels": list(NAMES)}  # id2label's order
    recipe["data"]["split"] = {"train": 0.5, "eval": 0.5, "calibration": 32}
    recipe["gate"] = {"accuracy": {"max_drop": 0.05}, "agreement": {"min": 0.9}}
    (project / "vit.yaml").write_text(yaml.safe_dump(recipe))

    result = run_cli(modelpress_cli, project, "run", "vit.yaml")
    assert result.returncode == 0, result.output[-4000:]
    assert "promoted to @champion" in result.stdout
    version, metrics, report = champion_run(project, "digits-vit")
    assert metrics["baseline.accuracy"] > 0.7  # a preprocessing unlike the model's own would not get here
    assert metrics["parity.agreement"] >= 0.99 and metrics["candidate.size_mb"] < metrics["baseline.size_mb"]
    assert report["validation"]["labels"] == list(NAMES)
    assert report["validation"]["images"] == {"files": 300, "min_width": 32, "max_width": 32, "min_height": 32,
                                              "max_height": 32, "modes": {"L": 300}}

    # The registered graph carries the processor: pulled, it is the folder's own, and a client
    # that preprocesses with it gets the classes right from ONNX Runtime.
    folder = pull("models:/digits-vit@champion", project / "pulled",
                  tracking_uri=f"sqlite:///{project / '.modelpress' / 'mlflow.db'}")
    shipped = ViTImageProcessor.from_pretrained(folder / version)
    assert shipped.to_dict() == ViTImageProcessor.from_pretrained(project / "digit-vit").to_dict()
    files = sorted((project / "digits").rglob("*.png"))[::10]
    pixels = shipped(images=[Image.open(f).convert("RGB") for f in files], return_tensors="np")["pixel_values"]
    session = ort.InferenceSession(str(folder / version / "model.onnx"))
    predicted = session.run(["logits"], {"pixel_values": pixels})[0].argmax(-1)
    assert np.mean([NAMES[p] == f.parent.name for p, f in zip(predicted, files, strict=True)]) > 0.7


def test_user_cnn_with_a_declared_transform_to_champion(project: Path, modelpress_cli: str) -> None:
    import mlflow

    user_cnn(project)
    recipe = {
        "name": "digits-cnn",
        "model": {"source": "state-dict", "path": "digit_cnn.pt", "class": "digit_cnn:Net",
                  "task": "image-classification"},
        # no labels: ImageFolder's order (the sorted folder names), which the CNN was trained with
        "data": {"source": "images", "path": "digits", "split": {"train": 0.5, "eval": 0.5, "calibration": 32},
                 "transform": {"resize": 30, "crop": 28, "mode": "L", "mean": [0.5], "std": [0.5]}},
        "stages": [{"prune": {"sparsity": 0.3}}, {"quantize": {"bits": 8}}],
        "gate": {"accuracy": {"max_drop": 0.05}},
        "registry": {"name": "digits-cnn"},
    }
    (project / "cnn.yaml").write_text(yaml.safe_dump(recipe))
    result = run_cli(modelpress_cli, project, "run", "cnn.yaml")
    assert result.returncode == 0, result.output[-4000:]
    assert "promoted to @champion" in result.stdout
    version, metrics, report = champion_run(project, "digits-cnn")
    assert metrics["baseline.accuracy"] > 0.85
    assert metrics["parity.agreement"] >= 0.99
    assert report["validation"]["labels"] == sorted(NAMES)
    # the transform travels with the registered model, as transformers' own processor config
    # (the version's files are found with this project's client: MLflow would resolve a models:/
    # URI through the process-wide registry URI, which another test may have set)
    client = mlflow_client(project)
    source = client.get_model_version_download_uri("digits-cnn", version)
    shipped = Path(mlflow.artifacts.download_artifacts(f"{source}/extra_files", dst_path=str(project / "cnn-model"),
                                                       tracking_uri=client.tracking_uri))
    config = json.loads((shipped / "preprocessor_config.json").read_text())
    assert config["image_processor_type"] == "BitImageProcessor"
    assert (config["size"], config["crop_size"], config["image_mean"]) == (
        {"shortest_edge": 30}, {"height": 28, "width": 28}, [0.5])
