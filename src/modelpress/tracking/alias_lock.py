"""A mutual-exclusion lease on one alias of a registered model, built from the one atomic
operation the MLflow registry has.

MLflow can neither compare-and-set an alias nor a tag: both are blind upserts, so two
promoters that read the same holder and then write both "win", and the later (possibly worse)
write stays. What *is* atomic on every registry backend is creating a registered model: the
name is the table's primary key, so of several concurrent ``create_registered_model(N)``
exactly one succeeds and the others get RESOURCE_ALREADY_EXISTS. The lock for ``NAME@ALIAS``
is therefore a registered model named :func:`lock_name` that carries the holder's unique
token, host/pid and an expiry time; releasing it deletes it.

A holder that is killed leaves its lock behind. Its lease runs out after ``lease_s``; a
waiter that finds an expired lock breaks it by *renaming* it to ``<lock>.stale.<token>``
(the token it read), not by deleting it: a delete goes by name and could remove a fresh lock
that another waiter created after breaking the same stale one, whereas a second rename of the
same stale lock fails because its target name already exists. Break markers are removed once
they are older than :data:`STALE_KEEP_S`.

The lock holder still re-checks after writing (see ``deploy.registry.promote``): whoever does
not take the lock (another tool, a person in the UI) can still move the alias.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    from mlflow import MlflowClient

LEASE_S = 30.0  # the critical section is a few registry calls; a lease this long only matters if killed
WAIT_S = 120.0
STALE_KEEP_S = 600.0
PREFIX = "modelpress-lock"


class LockTimeout(ModelpressError):
    """The lock stayed held by a live holder for longer than the caller would wait."""


@dataclass
class Lease:
    name: str
    token: str
    expires: float

    def valid(self, margin_s: float = 1.0) -> bool:
        """True while the lease has more than ``margin_s`` left (write only while it does)."""
        return time.time() < self.expires - margin_s


def lock_name(model: str, alias: str) -> str:
    return f"{PREFIX}.{model}.{alias}"


@contextmanager
def alias_lock(client: MlflowClient, model: str, alias: str, lease_s: float = LEASE_S,
               wait_s: float = WAIT_S) -> Iterator[Lease]:
    """Hold the lock on ``model@alias`` for the ``with`` block (released even on error)."""
    lease = _acquire(client, lock_name(model, alias), lease_s, wait_s)
    try:
        yield lease
    finally:
        _release(client, lease)


def _acquire(client: MlflowClient, name: str, lease_s: float, wait_s: float) -> Lease:
    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    pause = 0.02
    while True:
        expires = time.time() + lease_s
        try:
            client.create_registered_model(name, tags=_tags(token, expires), description=(
                f"promotion lock held by {socket.gethostname()} pid {os.getpid()}; deleted when the "
                f"promotion ends, broken by the next promoter once expired"))
            return Lease(name, token, expires)
        except MlflowException as exc:
            # ALREADY_EXISTS: held. DOES_NOT_EXIST: held, then released while the registry was
            # reporting on the existing lock (its duplicate-name path re-reads it).
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        _break_if_expired(client, name)
        if time.monotonic() > deadline:
            raise LockTimeout(f"{name} has been held by another promotion for over {wait_s:.0f} s")
        time.sleep(pause * (0.5 + random.random()))  # jitter: waiters do not retry in lock-step
        pause = min(pause * 2, 0.5)


def _tags(token: str, expires: float) -> dict[str, str]:
    return {"token": token, "expires": f"{expires:.3f}", "host": socket.gethostname(), "pid": str(os.getpid())}


def _holder(client: MlflowClient, name: str) -> tuple[str, float] | None:
    """(token, expiry) of the lock, or None when there is none or it cannot be read whole.

    A lock is created with its tags in one transaction, but a read is not one snapshot on
    every backend (on sqlite the model row and its tags are two SELECTs): a read that
    straddles a release can see the row without tags. That is "unknown", never "expired",
    or a waiter would break the lock the next holder has just taken."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags or {}
        return tags["token"], float(tags["expires"])
    except (MlflowException, KeyError, ValueError):
        return None


def _break_if_expired(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    holder = _holder(client, name)
    if holder is None or holder[1] > time.time():
        return
    try:  # a rename to a name derived from the token we read: only one breaker can succeed
        client.rename_registered_model(name, f"{name}.stale.{holder[0]}")
    except MlflowException:
        return  # someone else broke it (or it was released) first
    _forget_old_markers(client, name)


def _forget_old_markers(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    cutoff_ms = (time.time() - STALE_KEEP_S) * 1000
    try:
        markers = client.search_registered_models(filter_string=f"name LIKE '{name}.stale.%'")
        for marker in markers:
            if marker.last_updated_timestamp and marker.last_updated_timestamp < cutoff_ms:
                client.delete_registered_model(marker.name)
    except MlflowException:
        pass  # housekeeping only


def _release(client: MlflowClient, lease: Lease) -> None:
    """Delete the lock if it is still ours; an expired lease is left to the breakers (deleting
    by name then could remove a lock someone else has taken since)."""
    from mlflow.exceptions import MlflowException

    if not lease.valid(margin_s=0.5):
        return
    holder = _holder(client, lease.name)
    if holder is None or holder[0] != lease.token:
        return
    try:
        client.delete_registered_model(lease.name)
    except MlflowException:
        pass
