"""The promotion lock (src/modelpress/tracking/alias_lock.py) on a real MLflow sqlite registry: one holder at a
time, a killed holder's expired lease broken exactly once, a lock read without its tags never
taken for an expired one, and a holder whose lease ran out never deleting a successor's lock.
(The race against a real tracking server is integration_tests/test_promotion_race.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modelpress.tracking.alias_lock import LockTimeout, _break_if_expired, _holder, alias_lock, lock_name


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    uri = f"sqlite:///{tmp_path_factory.mktemp('lock') / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def test_one_holder_at_a_time(client: MlflowClient) -> None:
    outcome: dict[str, object] = {}

    def contender() -> None:
        try:
            with alias_lock(client, "m", "champion", wait_s=0.5):
                outcome["held"] = True
        except LockTimeout as exc:
            outcome["timeout"] = str(exc)

    with alias_lock(client, "m", "champion") as lease:
        assert _holder(client, lock_name("m", "champion"))[0] == lease.token
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert "timeout" in outcome and "held" not in outcome
    assert not exists(client, lock_name("m", "champion"))  # released
    with alias_lock(client, "m", "champion"):
        pass  # free again


def test_a_killed_holders_lock_is_broken_once_after_its_lease(client: MlflowClient) -> None:
    name = lock_name("k", "champion")
    client.create_registered_model(name, tags={"token": "dead", "expires": f"{time.time() - 1:.3f}"})
    with alias_lock(client, "k", "champion", wait_s=5) as lease:
        assert exists(client, f"{name}.stale.dead")  # broken by renaming, not deleting
        # a second waiter that read the same stale lock renames to the same name: refused, so the
        # lock taken since survives
        with pytest.raises(MlflowException):
            client.rename_registered_model(name, f"{name}.stale.dead")
        assert _holder(client, name)[0] == lease.token


def test_a_lock_read_without_its_tags_is_not_taken_for_expired(client: MlflowClient) -> None:
    name = lock_name("t", "champion")
    client.create_registered_model(name)  # what a read straddling a release can look like
    _break_if_expired(client, name)
    assert exists(client, name)
    client.delete_registered_model(name)


def test_a_holder_whose_lease_ran_out_leaves_the_lock_to_the_breakers(client: MlflowClient) -> None:
    """Past its lease a breaker may already have handed the lock on, and a delete goes by name:
    the late holder must not delete, even what still looks like its own lock."""
    name = lock_name("e", "champion")
    with alias_lock(client, "e", "champion", lease_s=0.6) as lease:
        time.sleep(0.7)
        assert not lease.valid()
    assert _holder(client, name)[0] == lease.token  # left in place, expired
    with alias_lock(client, "e", "champion", wait_s=5) as successor:  # the next promoter breaks it
        assert successor.token != lease.token
