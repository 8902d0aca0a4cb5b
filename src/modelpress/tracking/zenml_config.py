"""Which ZenML a run records in: the user's own, or modelpress's embedded store.

Decided before ZenML is imported (ZenML reads ``ZENML_CONFIG_PATH`` once, when its global
configuration is first built), from files only, in this order:

0. A process that already uses ZenML (a user's own pipeline calling modelpress's steps): that
   ZenML, as the process set it up (ZenML builds its global configuration once per process).
1. ``MODELPRESS_STACK=embedded`` (``modelpress run --embedded``): the embedded store, whatever
   else is configured.
2. ``ZENML_CONFIG_PATH`` set: the ZenML it names (unless it is the embedded store's own folder).
3. A ``ZENML_STORE_URL`` (ZenML's own override of the store): the user's ZenML.
4. ZenML's global config (``config.yaml`` in ``click.get_app_dir("zenml")``, ``~/.config/zenml``
   on Linux: where ``zenml.utils.io_utils.get_global_config_directory`` looks without
   ``ZENML_CONFIG_PATH``) counts as configured when its store is not ZenML's default local
   sqlite file (``zenml login`` to a server, ``zenml login --local``, a MySQL URL) or its active
   stack is not the bare ``default`` stack (``zenml stack set``, ``modelpress stack register``).
5. Otherwise (no ZenML used yet, or only its untouched default): the embedded store.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError

STACK_ENV = "MODELPRESS_STACK"
#: the values of MODELPRESS_STACK: "auto" follows the order above, "embedded" forces step 1
STACK_CHOICES = ("auto", "embedded")
DEFAULT_STACK = "default"  # ZenML's DEFAULT_STACK_AND_COMPONENT_NAME


@dataclass(frozen=True)
class ZenmlChoice:
    embedded: bool
    reason: str  # shown to the user: why this ZenML (the env var or file that decided it)


def home() -> Path:
    return Path(os.environ.get("MODELPRESS_HOME", ".modelpress")).resolve()


def embedded_config_path() -> Path:
    return home() / "zenml"


def global_config_directory() -> Path:
    """ZenML's global config folder without ``ZENML_CONFIG_PATH`` (as io_utils finds it)."""
    import click

    return Path(click.get_app_dir("zenml"))


def choose_zenml() -> ZenmlChoice:
    in_use = _zenml_in_use()
    if in_use is not None:
        return ZenmlChoice(in_use == embedded_config_path(), f"the ZenML this process already uses ({in_use})")
    mode = os.environ.get(STACK_ENV, "auto") or "auto"
    if mode not in STACK_CHOICES:
        raise ModelpressError(f"{STACK_ENV}={mode}: expected one of {', '.join(STACK_CHOICES)}")
    if mode == "embedded":
        return ZenmlChoice(True, f"{STACK_ENV}=embedded")
    explicit = os.environ.get("ZENML_CONFIG_PATH")
    if explicit:
        same = Path(explicit).resolve() == embedded_config_path()
        return ZenmlChoice(same, f"ZENML_CONFIG_PATH={explicit}")
    if os.environ.get("ZENML_STORE_URL"):
        return ZenmlChoice(False, f"ZENML_STORE_URL={os.environ['ZENML_STORE_URL']}")
    folder = global_config_directory()
    if configured(folder):
        return ZenmlChoice(False, f"ZenML's global config {folder / 'config.yaml'}")
    return ZenmlChoice(True, "no ZenML configured")


def _zenml_in_use() -> Path | None:
    """The config folder of ZenML's global configuration if this process has built it already
    (looked up without importing ZenML: not imported means not built)."""
    module = sys.modules.get("zenml.config.global_config")
    config = getattr(getattr(module, "GlobalConfiguration", None), "_global_config", None)
    return Path(config.config_directory).resolve() if config is not None else None


def configured(folder: Path) -> bool:
    """Whether the global config in ``folder`` is more than ZenML's untouched default."""
    config = _read_yaml(folder / "config.yaml")
    if config is None:
        return False
    store = config.get("store") or {}
    default_url = f"sqlite:///{folder / 'local_stores' / 'default_zen_store' / 'zenml.db'}"
    url = store.get("url")
    if url and url != default_url:
        return True
    active = config.get("active_stack_id")
    return active is not None and _stack_name(folder / "local_stores" / "default_zen_store" / "zenml.db",
                                              str(active)) != DEFAULT_STACK


def _read_yaml(path: Path) -> dict[str, Any] | None:
    import yaml

    if not path.is_file():
        return None
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {"store": {"url": f"unreadable: {path}"}}  # ZenML will say what is wrong with it
    return loaded if isinstance(loaded, dict) else None


def _stack_name(database: Path, stack_id: str) -> str | None:
    """The active stack's name, read from ZenML's local sqlite store without importing ZenML
    (ZenML stores ids as 32 hex digits); None (not the default) when it cannot be read."""
    if not database.is_file():
        return DEFAULT_STACK  # ZenML creates the store, with only its default stack, on first use
    try:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT name FROM stack WHERE id = ?", (uuid.UUID(stack_id).hex,)).fetchone()
    except (sqlite3.Error, ValueError):
        return None
    return row[0] if row else None
