"""Image files as users have them: an ImageFolder tree, a Parquet column of bytes, a CSV column of
paths; preprocessing by the model's own image processor or ``data.transform``; the
great-expectations checks; ``modelpress init`` on an image folder; the image processor shipped
beside the ONNX graph. Library-level: the full pipeline runs are in integration_tests/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelpress.core.errors import DataValidationError, ModelpressError, RecipeError
from modelpress.recipe.schema import validate_recipe

CNN = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
'''
#: the files of the ImageFolder tree: sizes and modes differ, as in users' folders
FILES = {"cat/c0.png": (16, 16, "L"), "cat/sub/c1.png": (24, 18, "RGB"), "cat/c2.jpg": (20, 30, "RGB"),
         "dog/d0.png": (16, 16, "L"), "dog/d1.PNG": (18, 24, "RGBA"), "dog/d2.bmp": (31, 17, "RGB")}


def _write_image(path: Path, width: int, height: int, mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode).save(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("image-data")
    for seed, (name, (width, height, mode)) in enumerate(FILES.items()):
        _write_image(folder / "pets" / name, width, height, mode, seed)
    (folder / "pets" / "cat" / "notes.txt").write_text("not an image")
    _write_image(folder / "pets" / ".ipynb_checkpoints" / "x.png", 8, 8, "L", 99)  # not a class
    (folder / "net.py").write_text(CNN)
    sys.path.insert(0, str(folder))
    from net import Net  # type: ignore[import-not-found]

    torch.save(Net().state_dict(), folder / "net.pt")
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=2, id2label={0: "dog", 1: "cat"}, label2id={"dog": 0, "cat": 1})
    ViTForImageClassification(config).save_pretrained(folder / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5, 0.4, 0.3],
                      image_std=[0.2, 0.25, 0.3]).save_pretrained(folder / "vit")
    shutil.copytree(folder / "vit", folder / "vit-bare", ignore=shutil.ignore_patterns("preprocessor_config.json"))
    return folder


PLAIN = {"source": "state-dict", "path": "net.pt", "class": "net:Net", "task": "image-classification"}
TRANSFORM = {"resize": [8, 8], "mode": "L"}


def recipe(project: Path, data: dict, model: dict | None = None) -> dict:
    return {"name": "pets", "model": model or PLAIN, "data": data, "stages": ["quantize"], "registry": {"name": "pets"}}


def validated(project: Path, data: dict, model: dict | None = None):  # type: ignore[no-untyped-def]
    return validate_recipe(recipe(project, data, model), base=project)


# --- the data sources ------------------------------------------------------------------------

def test_image_folder_is_read_as_torchvision_imagefolder_reads_it(project: Path) -> None:
    spec = validated(project, {"source": "images", "path": "pets", "transform": TRANSFORM}).data
    frame = spec.load()
    # classes = the sorted folder names (hidden folders are none); files found recursively, by suffix
    assert spec.describe().labels == ("cat", "dog") and spec.describe().kind == "image"
    assert sorted(frame["image_file"]) == sorted(FILES)
    for row in frame.itertuples():
        assert row.image == (project / "pets" / row.image_file).read_bytes()
        assert row.label == row.image_file.split("/")[0]
    assert spec.describe().image_shape == (1, 8, 8)  # what the transform makes of every file


def test_parquet_bytes_and_csv_paths_columns_read_the_same_images(project: Path) -> None:
    names = sorted(FILES)
    labels = [n.split("/")[0] for n in names]
    pd.DataFrame({"img": [(project / "pets" / n).read_bytes() for n in names], "y": labels}).to_parquet(
        project / "pets.parquet")
    # Hugging Face datasets write an Image column as {bytes, path} records
    pd.DataFrame({"img": [{"bytes": (project / "pets" / n).read_bytes(), "path": n} for n in names],
                  "y": labels}).to_parquet(project / "pets-hf.parquet")
    (project / "tables").mkdir(exist_ok=True)
    pd.DataFrame({"file": [f"../pets/{n}" for n in names], "y": labels}).to_csv(project / "tables" / "pets.csv",
                                                                                index=False)
    expected = [(project / "pets" / n).read_bytes() for n in names]
    for source, path in (("parquet", "pets.parquet"), ("parquet", "pets-hf.parquet"), ("csv", "tables/pets.csv")):
        column = "file" if source == "csv" else "img"
        spec = validated(project, {"source": source, "path": path, "image": column, "label": "y",
                                   "transform": TRANSFORM}).data
        frame = spec.load()
        assert list(frame["image"]) == expected, path  # relative paths resolve against the CSV's folder
        assert list(frame["label"]) == labels and spec.describe().kind == "image"


def _problems(project: Path, data: dict, model: dict | None = None) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validated(project, data, model)
    return info.value.problems


def test_bad_image_data_is_refused_at_validate_with_one_line(project: Path) -> None:
    one_class = project / "one-class" / "cat"
    one_class.mkdir(parents=True)
    shutil.copy(project / "pets" / "cat" / "c0.png", one_class)
    pd.DataFrame({"file": ["pets/cat/c0.png", "pets/cat/gone.png", "pets/dog/d0.png"],
                  "y": ["cat", "cat", "dog"]}).to_csv(project / "gone.csv", index=False)
    vit, bare = {"source": "huggingface", "path": "vit"}, {"source": "huggingface", "path": "vit-bare"}
    cases = {
        "data.path: no such file or folder: 'nowhere'": ({"source": "images", "path": "nowhere"}, None),
        "data.path: ": ({"source": "images", "path": "one-class", "transform": TRANSFORM}, None),
        "data.image: 1 of 3 rows of gone.csv hold no readable image; the first, row 1: no such image file "
        "'pets/cat/gone.png'": ({"source": "csv", "path": "gone.csv", "image": "file", "label": "y",
                                 "transform": TRANSFORM}, None),
        "data.transform: a plain module's image preprocessing must be declared": (
            {"source": "images", "path": "pets"}, None),
        "data.transform: the model brings its own preprocessing": (
            {"source": "images", "path": "pets", "transform": {**TRANSFORM, "mode": "RGB"}}, vit),
        "data.transform: the model's folder has no preprocessor_config.json": (
            {"source": "images", "path": "pets"}, bare),
        "data.transform.mode: L gives 1 channel(s), but the model's config.json has num_channels 3": (
            {"source": "images", "path": "pets", "transform": TRANSFORM}, bare),
        "data.labels: class folder(s) dog of": ({"source": "images", "path": "pets", "labels": ["cat", "bird"],
                                                 "transform": TRANSFORM}, None),
        "data.transform: resize: 20 keeps each image's aspect ratio": (
            {"source": "images", "path": "pets", "transform": {"resize": 20}}, None),
        "data.csv: give exactly one of 'text' (a column), 'features' (columns) or 'image' (a column)": (
            {"source": "csv", "path": "gone.csv", "image": "file", "features": "*", "label": "y"}, None),
    }
    for expected, (data, model) in cases.items():
        problems = _problems(project, data, model)
        assert len(problems) == 1 and problems[0].startswith(expected), (expected, problems)
    assert "1 class folder(s) with image files (cat)" in _problems(
        project, {"source": "images", "path": "one-class", "transform": TRANSFORM})[0]
    assert "holds image files but no class folders" in _problems(
        project, {"source": "images", "path": "one-class/cat", "transform": TRANSFORM})[0]


# --- preprocessing: the model's own, or data.transform ----------------------------------------

def _plan_task(project: Path, data: dict, model: dict | None = None):  # type: ignore[no-untyped-def]
    from modelpress.datasets.base import dataset_config
    from modelpress.pipelines.plan import build_plan

    plan = build_plan(validated(project, data, model), tracker="t", experiment="t")
    return plan.task.build(), dataset_config(plan.data.name, plan.data.config).load()


def test_a_hugging_face_model_is_fed_by_its_own_image_processor(project: Path) -> None:
    from transformers import ViTImageProcessor

    task, frame = _plan_task(project, {"source": "images", "path": "pets"}, {"source": "huggingface", "path": "vit"})
    ours = task.encode(frame)["pixel_values"]
    # what a user of the model does: its processor on the files, decoded by PIL as RGB
    theirs = ViTImageProcessor.from_pretrained(project / "vit")(
        images=[Image.open(project / "pets" / f).convert("RGB") for f in frame["image_file"]],
        return_tensors="np")["pixel_values"]
    assert ours.shape == (len(FILES), 3, 16, 16) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert task.spec.labels == ("dog", "cat")  # the model's id2label, not the sorted folder names


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_declared_transform_is_the_torchvision_pipeline(project: Path, mode: str) -> None:
    channels = 3 if mode == "RGB" else 1
    mean, std = [0.485, 0.456, 0.406][:channels], [0.229, 0.224, 0.225][:channels]
    transform = {"resize": 20, "crop": [16, 18], "mean": mean, "std": std, "mode": mode, "resample": "bicubic"}
    task, frame = _plan_task(project, {"source": "images", "path": "pets", "transform": transform})
    ours = task.encode(frame)["pixel_values"]
    for index, name in enumerate(frame["image_file"]):
        # Resize(20) → CenterCrop((16, 18)) → ToTensor() → Normalize(mean, std), written out
        image = Image.open(project / "pets" / name).convert(mode)
        scale = 20 / min(image.size)
        size = (20, int(image.height * scale)) if image.width <= image.height else (int(image.width * scale), 20)
        array = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float64).reshape(size[1], size[0], -1)
        top, left = (array.shape[0] - 16) // 2, (array.shape[1] - 18) // 2
        expected = ((array[top:top + 16, left:left + 18] / 255.0 - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(ours[index], expected, rtol=0, atol=1e-5, err_msg=name)


# --- great-expectations ------------------------------------------------------------------------

def test_great_expectations_name_the_first_file_that_does_not_decode(project: Path, tmp_path: Path) -> None:
    from modelpress.datasets.profile import data_profile
    from modelpress.datasets.validation import check_against_profile, validate_frame

    spec = validated(project, {"source": "images", "path": "pets", "transform": TRANSFORM}).data
    frame = spec.load()
    report = validate_frame(frame, spec.describe(), min_rows=2)
    assert report["images"] == {"files": 6, "min_width": 16, "max_width": 31, "min_height": 16, "max_height": 30,
                                "modes": {"L": 2, "RGB": 3, "RGBA": 1}}
    profile = data_profile(frame)
    assert profile["kind"] == "image" and 0 < profile["row_stat"]["mean"] < 1
    assert check_against_profile(frame, profile, {"max_label_kl": 0.1, "max_mean_shift": 0.5,
                                                  "max_out_of_range": 0.01})["success"]

    broken = shutil.copytree(project / "pets", tmp_path / "pets")
    png = (broken / "dog" / "d0.png").read_bytes()
    (broken / "dog" / "d0.png").write_bytes(png[: len(png) // 2])  # truncated
    (broken / "cat" / "fake.png").write_text("a text file named .png")
    spec = validated(project, {"source": "images", "path": str(broken), "transform": TRANSFORM}).data
    with pytest.raises(DataValidationError) as info:
        validate_frame(spec.load(), spec.describe(), min_rows=2)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  - 2 of 7 image files do not decode; the first: cat/fake.png (")
    assert "UnidentifiedImageError" in lines[1]


# --- modelpress init on an image folder ---------------------------------------------------------

def test_init_recognises_an_image_folder(project: Path) -> None:
    import yaml

    from modelpress.cli.init import Choices, starter_recipe, write_starter

    hf = starter_recipe(Choices(model=project / "vit", data=project / "pets", out=project / "hf.yaml"))
    assert hf["model"] == {"source": "huggingface", "path": "vit"}  # the task from config.json
    assert hf["data"] == {"source": "images", "path": "pets", "labels": ["dog", "cat"]}  # id2label; its processor
    plain = Choices(model=project / "net.pt", data=project / "pets", out=project / "plain.yaml", model_class="net:Net")
    written = yaml.safe_load(write_starter(plain).read_text())  # validated before it is written
    assert written["model"]["task"] == "image-classification"
    assert written["data"] == {"source": "images", "path": "pets", "labels": ["cat", "dog"],
                               "transform": {"resize": [16, 16], "mode": "L"}}  # read from cat/c0.png
    with pytest.raises(ModelpressError, match="--labels: the class folder.s. dog are not among them"):
        starter_recipe(Choices(model=project / "net.pt", data=project / "pets", out=project / "x.yaml",
                               model_class="net:Net", labels=["cat", "bird"]))
    # a table with a column of image bytes beside the label: the same, with `image:`
    names = sorted(FILES)
    pd.DataFrame({"y": [n.split("/")[0] for n in names], "photo": [(project / "pets" / n).read_bytes()
                                                                  for n in names]}).to_parquet(project / "init.parquet")
    table = Choices(model=project / "net.pt", data=project / "init.parquet", out=project / "table.yaml",
                    model_class="net:Net")
    written = yaml.safe_load(write_starter(table).read_text())
    assert written["model"]["task"] == "image-classification"
    assert written["data"] == {"source": "parquet", "path": "init.parquet", "label": "y", "image": "photo",
                               "labels": ["cat", "dog"], "transform": {"resize": [16, 16], "mode": "L"}}


# --- the preprocessing ships with the model ------------------------------------------------------

def test_the_onnx_graph_carries_the_image_processor_into_the_triton_repository(project: Path,
                                                                            tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper
    from transformers import AutoImageProcessor

    from modelpress.builds import BuildContext
    from modelpress.deploy.triton_repo import write_onnx_model

    task, frame = _plan_task(project, {"source": "images", "path": "pets"}, {"source": "huggingface", "path": "vit"})
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("Flatten", ["pixel_values"], ["logits"])], "g",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 768])]))
    shipped = BuildContext(name="pets", task=task, eval_frame=frame).with_preprocessor(graph)
    assert not graph.metadata_props  # the candidate itself is left as it is
    folder = write_onnx_model(tmp_path, "pets", 1, onnx.load_from_string(shipped.SerializeToString()))
    loaded = AutoImageProcessor.from_pretrained(folder / "1", use_fast=False)
    original = json.loads((project / "vit" / "preprocessor_config.json").read_text())
    assert {k: v for k, v in loaded.to_dict().items() if k in original} == original
