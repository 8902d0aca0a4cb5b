"""Files a recipe names: resolved against the recipe's folder, fingerprinted, refused in one line."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationInfo

from modelpress.core.errors import ModelpressError


def resolve_path(value: Path | str, info: ValidationInfo) -> Path:
    """``value`` against the recipe's folder (validation context ``base``), which must exist."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base") if info is not None else None
    if not path.is_absolute() and base is not None and (Path(base) / path).exists():
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"no such file or folder: '{value}'")
    return path.resolve()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """One digest over a folder's files (names and contents), for folder models."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def unreadable(path: Path, kind: str, exc: BaseException) -> ModelpressError:
    """One line naming the file: a truncated or foreign file must not end in a traceback."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelpressError(f"{path}: not a readable {kind} ({detail[:300]})")
