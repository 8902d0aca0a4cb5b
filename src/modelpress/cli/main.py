"""The ``modelpress`` command line.

``init`` writes a recipe, ``validate`` checks one, ``run`` runs it (compress, gate, register,
build); ``stages``, ``sources``, ``tasks`` and ``builds`` list the plugin registries; ``pull``
fetches a registered version's builds and ``serve`` serves a model repository; ``stack register``
gives the user's ZenML a stack with modelpress's MLflow tracker (cli/stack.py). The lifecycle
commands (promote, rollback, search, retrain, schedule) are defined in their own module and added
below (:func:`_add_lifecycle_commands`).

Start-up stays fast: heavy modules are imported inside the commands that use them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from modelpress.cli.errors import user_errors
from modelpress.cli.init import Choices, write_starter
from modelpress.cli.lifecycle import COMMANDS
from modelpress.cli.running import run_logged
from modelpress.cli.stack import stack
from modelpress.core.errors import GateFailed, ModelpressError
from modelpress.core.quiet import VERBOSE_ENV, plain_terminal
from modelpress.core.registry import BUILDS, LM_TASK_KINDS, SOURCES, TASKS
from modelpress.core.registry import stages as registered
from modelpress.datasets.base import Dataset, dataset_kinds
from modelpress.datasets.splits import eval_count
from modelpress.deploy.pull import InstanceKind, pull_build
from modelpress.deploy.pull import pull as pull_model
from modelpress.pipelines.plan import task_spec
from modelpress.pipelines.run import run_recipe
from modelpress.pipelines.sizes import size_notes
from modelpress.recipe.gate_bounds import DROP_RULES, unresolvable
from modelpress.recipe.schema import load_recipe
from modelpress.tracking.zenml_config import STACK_ENV


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelpress")
@click.option("-v", "--verbose", is_flag=True,
              help="Show every library's output (and tracebacks); by default it only goes to the run's log.")
def main(verbose: bool) -> None:
    """Compress PyTorch models in ZenML pipelines, gate them and register them in MLflow."""
    import os

    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    plain_terminal()
    # Idle OpenMP threads sleep instead of spinning (set before torch loads). Spinning made
    # GPTQ's per-column loop ~40x slower on a 2-core machine shared with other jobs
    # (benchmarks/RESULTS.md, "OpenMP threads on a busy 2-core box"); a user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load(recipe_ref: str) -> Any:
    return load_recipe(recipe_ref)


@main.command()
@click.argument("recipe")
def validate(recipe: str) -> None:
    """Check RECIPE (a file or a shipped recipe name); print every problem with its field path."""
    with user_errors():
        loaded = _load(recipe)
        notes = size_notes(loaded, task_spec(loaded).build())  # a causal LM's splits in tokens
    click.echo(f"{recipe}: ok ({loaded.task}, stages: {', '.join(s.name for s in loaded.stages)})")
    for note in notes:
        click.echo(note, err=note.startswith("warning"))
    for warning in _resolution_warnings(loaded):
        click.echo(f"warning: {warning}")


def _resolution_warnings(loaded: Any) -> list[str]:
    """Gate bounds the eval split is too small to resolve (the data is read to count its rows)."""
    task = loaded.task_class
    if not task.labelled or not any(getattr(t, r) is not None for t in loaded.gate.values() for r in DROP_RULES):
        return []
    try:
        rows = len(loaded.data.load())
    except Exception:  # noqa: BLE001 -- unreadable data is reported by the run, with its own message
        return []
    rows = min(rows, loaded.data.limit or rows)
    return unresolvable(loaded.gate, task, eval_count(loaded.data.split, rows), loaded.statistics)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "-o", default="recipe.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Recipe file to write.")
@click.option("--label", default=None, help="Label column (default: guessed: label, target, class, …, else the last).")
@click.option("--text", default=None, help="Text column, for text classification (default: guessed).")
@click.option("--task", default=None,
              help="Task (default: from the model, else from the data; see `modelpress tasks`).")
@click.option("--class", "model_class", default=None, help="module:Class a state dict fits (state-dict models).")
@click.option("--labels", default=None, help="The model's class order, comma-separated (default: its "
              "id2label, else the data's sorted labels).")
@click.option("--trust-pickle", is_flag=True, help="Allow a whole pickled module (its code runs when loaded).")
@click.option("--name", default=None, help="Recipe and registered model name (default: from the model file).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def init(model: Path, data: Path, out: Path, label: str | None, text: str | None, task: str | None,
         model_class: str | None, labels: str | None, trust_pickle: bool, name: str | None, force: bool) -> None:
    """Write a starter recipe for your MODEL (HF folder, TorchScript, state dict, ONNX) and DATA (CSV/Parquet,
    or a folder of images laid out as DATA/<class>/<image>)."""

    with user_errors():
        if out.exists() and not force:
            raise ModelpressError(f"{out}: exists; pass --force to overwrite it or --out another file")
        written = write_starter(Choices(model=model, data=data, out=out, label=label, text=text, task=task,
                                        model_class=model_class, trust_pickle=trust_pickle, name=name,
                                        labels=labels.split(",") if labels else None))
    click.echo(f"wrote {written}; next: modelpress validate {written} && modelpress run {written}")


#: where `tasks` and `builds` send a reader who wants to know what works on which model
SUPPORT_MATRIX = ("\nWhich model families each stage and build is tested on, and why a combination is refused: "
                  "the support matrix in the README (generated from the tests: tests/support_matrix.py).")


@main.command()
def stages() -> None:
    """List the registered stages (techniques) with each config's fields."""

    for name, spec in sorted(registered().items()):
        click.echo(f"{name} [{spec.kind}]: {spec.summary}")
        _echo_fields(spec.config, "    ")


@main.command()
def sources() -> None:
    """List the registered model sources (model.source) with their fields."""

    for name, source in sorted(SOURCES.all().items()):
        click.echo(f"{name} [{source.artifact}]: {source.summary}")
        _echo_fields(source, "    ", skip=("source", "search_path"))


@main.command()
def datasets() -> None:
    """List the registered data sources (data.source) with their fields."""

    common = tuple(Dataset.model_fields)  # split, seed, limit: every source has them
    for name, kind in sorted(dataset_kinds().items()):
        click.echo(f"{name}: {kind.summary}")
        _echo_fields(kind, "    ", skip=common)
    click.echo("\nEvery data source also takes: " + ", ".join(f for f in common if f != "source")
               + " (how the rows are sampled and split).")


@main.command()
def tasks() -> None:
    """List the registered tasks (model.task): options, the data they take, what they measure."""

    for name, task in sorted(TASKS.all().items()):
        click.echo(f"{name} [{task.data_kind} data]: {task.summary}")
        _echo_fields(task.Config, "    ", skip=("name",))
        click.echo("    measures: " + ", ".join(f"{m.name} ({'higher' if m.higher_is_better else 'lower'} is "
                                                f"better)" for m in task.metrics))
        click.echo(f"    promotion compares: {task.primary_metric}")
    kinds = ", ".join(f"{name} ({', '.join(getattr(kind, 'measures', ()))})"
                      for name, kind in sorted(LM_TASK_KINDS.all().items()))
    click.echo(f"causal-lm tasks[].kind: {kinds}; each measure is a metric tasks.NAME.MEASURE")
    click.echo(SUPPORT_MATRIX)


@main.command()
def builds() -> None:
    """List the registered builds (export formats) with their fields."""

    for name, build in sorted(BUILDS.all().items()):
        click.echo(f"{name}{' [registers]' if build.registers else ''}: {build.summary}")
        _echo_fields(build, "    ")
    click.echo(SUPPORT_MATRIX)


def _echo_fields(config: Any, indent: str, skip: tuple[str, ...] = ()) -> None:
    """One line per field (type, default, description); nested option objects indented below."""
    from pydantic import BaseModel

    for field_name, field in config.model_fields.items():
        if field_name in skip:
            continue
        field_name = field.alias or field_name
        default = field.get_default(call_default_factory=True)
        shown = ("required" if field.is_required() else "defaults below" if isinstance(default, BaseModel)
                 else f"default {default!r}")
        about = f" — {field.description}" if field.description else ""
        click.echo(f"{indent}{field_name}: {_describe_type(field.annotation)} ({shown}){about}")
        nested = _nested_config(field.annotation)
        if nested is not None:
            _echo_fields(nested, indent + "    ")


def _nested_config(annotation: Any) -> Any:
    """The option class of a field typed ``Options`` or ``Options | None``, else None."""
    from typing import get_args

    from pydantic import BaseModel

    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _describe_type(annotation: Any) -> str:
    """`Literal[8, 4]` → `one of 8, 4`; `X | None` → `X or null`; classes by name."""
    import types
    from typing import Annotated, Literal, Union, get_args, get_origin

    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        return " | ".join(_describe_type(a) for a in args if a is not type(None)) + " or null"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(str, args))
    if isinstance(annotation, type) and not args:
        return annotation.__name__
    if get_origin(annotation) is Annotated:  # validators and serializers say nothing to a user
        return _describe_type(args[0])
    if get_origin(annotation) is list and len(args) == 1 and get_origin(args[0]) is Annotated:
        return f"list[{_describe_type(args[0])}]"
    return str(annotation).replace("typing.", "").replace("modelpress.", "")


@main.command()
@click.argument("recipe")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing ZenML's cache.")
@click.option("-v", "--verbose", is_flag=True, help="Show every library's output, not only steps and progress.")
@click.option("--embedded", is_flag=True,
              help="Record in modelpress's own store (MODELPRESS_HOME) even where your ZenML is configured "
                   "(as MODELPRESS_STACK=embedded does).")
def run(recipe: str, no_cache: bool, verbose: bool, embedded: bool) -> None:
    """Run RECIPE end to end: data → validate → baseline → stages → gate → MLflow → promote. Records in your
    ZenML's active stack where one is configured (ZENML_CONFIG_PATH or ZenML's global config), else in
    ./.modelpress."""
    import os

    if embedded:
        os.environ[STACK_ENV] = "embedded"
    with user_errors():
        loaded = _load(recipe)

    def pipeline() -> Any:
        return run_recipe(loaded, enable_cache=not no_cache)

    result = run_logged(loaded.name, pipeline, verbose)
    if not result.passed:
        with user_errors():
            raise GateFailed(f"gate failed: {result.verdict.reason}")


@main.command()
@click.argument("model_uri")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False),
              help="Model repository folder to write <name>/<version>/ into.")
@click.option("--instance-kind", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="Triton instance_group kind written into config.pbtxt.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI).")
@click.option("--optimize", is_flag=True,
              help="Apply ONNX Runtime's portable (basic) graph optimizations offline, parity-checked.")
@click.option("--build", "build", default=None, metavar="NAME",
              help="Fetch the LLM build NAME logged with the version (gguf, onnxruntime-genai, "
                   "compressed-tensors, gptq) into DIR/NAME instead of a model repository.")
def pull(model_uri: str, dest: str, instance_kind: str, tracking_uri: str | None, optimize: bool,
         build: str | None) -> None:
    """Fetch MODEL_URI (models:/NAME@ALIAS or models:/NAME/VERSION) as a model repository."""

    with user_errors():
        if build is not None:

            folder = pull_build(model_uri, build, Path(dest), tracking_uri)
        else:

            # click.Choice keeps it to these two
            kind: InstanceKind = "KIND_GPU" if instance_kind.lower() == "gpu" else "KIND_CPU"
            folder = pull_model(model_uri, Path(dest), kind, tracking_uri, optimize)
    click.echo(f"{model_uri} → {folder}")


@main.command()
@click.option("--model-repository", "repository", required=True, type=click.Path(file_okay=False),
              help="A folder written by `modelpress pull` (<name>/config.pbtxt, <name>/<version>/), or an "
                   "onnxruntime-genai build (`pull --build onnxruntime-genai`: DIR/onnxruntime-genai), "
                   "served over the OpenAI API.")
@click.option("--http-port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (each loads every model; the LLM server runs one).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(0, 256),
              help="ONNX Runtime intra-op threads per model (0: one per core); scale with --workers.")
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@click.option("--max-request-mb", type=click.IntRange(1, 4096),
              help="Larger request bodies are refused with 413 before they are read "
                   "[default: 32, or 4 for an LLM build].")
def serve(repository: str, http_port: int, workers: int, threads: int, access_log: bool,
          max_request_mb: int | None) -> None:
    """Serve ONNX models over the V2 inference protocol, or an LLM build over the OpenAI API
    (/v1/completions, /v1/chat/completions); needs the serve extra."""

    llm = (Path(repository) / "genai_config.json").is_file()  # an onnxruntime-genai build
    run_server: Callable[..., None]
    try:
        if llm:
            from modelpress.deploy.llm_server import serve as run_server
        else:
            from modelpress.deploy.server import serve as run_server
    except ImportError as exc:
        click.echo(f"error: the CPU server needs the serve extra (pip install 'modelpress[serve]'): {exc}",
                   err=True)
        sys.exit(1)
    limit = {} if max_request_mb is None else {"max_request_bytes": max_request_mb * 1024 * 1024}
    with user_errors():
        run_server(Path(repository), http_port=http_port, workers=workers, intra_op_threads=threads,
                   access_log=access_log, **limit)


def _add_lifecycle_commands() -> None:
    for command in (*COMMANDS, stack):
        main.add_command(command)


_add_lifecycle_commands()

if __name__ == "__main__":
    main()
