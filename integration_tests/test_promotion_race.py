"""Racing promotions against a real `mlflow server`: 8 versions with different scores promoted
at once (threads, each with its own HTTP client), 20 times. Every time @champion must end on the
best version that passed its gate, and the previous_champion chain must hold exactly the
promotions that reported success, each better than the one before."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow import MlflowClient

from modelpress.core.errors import ModelpressError
from modelpress.release.promotion import promote_version

ROUNDS, RACERS = 20, 8


def register_versions(client: MlflowClient, name: str, rng: random.Random) -> dict[str, tuple[float, bool]]:
    """RACERS versions of ``name`` with distinct accuracies; about a quarter fail their gate."""
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("race") or client.get_experiment(client.create_experiment("race"))
    run = client.create_run(experiment.experiment_id, run_name=name)
    scores = rng.sample(range(500, 1000), RACERS)
    versions = {}
    for score in scores:
        passed = rng.random() > 0.25
        tags = {"gate": "passed" if passed else "failed", "gate_reason": "test", "accuracy": f"{score / 1000:.3f}",
                "data_fingerprint": "race:1"}
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model-{score}", tags=tags,
                                              run_id=run.info.run_id, await_creation_for=0)
        versions[str(version.version)] = (score / 1000, passed)
    return versions


def race(url: str, name: str, versions: list[str]) -> dict[str, bool]:
    """Promote every version at once; {version: promoted}."""
    start = threading.Barrier(len(versions))

    def one(version: str) -> tuple[str, bool]:
        start.wait()
        try:
            return version, promote_version(name, version, tracking_uri=url).promoted
        except ModelpressError:  # a version that failed its gate is refused
            return version, False

    with ThreadPoolExecutor(len(versions)) as pool:
        return dict(pool.map(one, versions))


def champion_chain(client: MlflowClient, name: str) -> list[str]:
    """@champion, then each previous_champion back to the first."""
    chain = [str(client.get_model_version_by_alias(name, "champion").version)]
    while True:
        previous = client.get_model_version(name, chain[-1]).tags.get("previous_champion")
        if not previous:
            return chain
        assert previous not in chain, f"previous_champion cycle: {chain} -> {previous}"
        chain.append(previous)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_racing_promotions_end_on_the_best_passing_version(mlflow_server, round_: int) -> None:
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    name = f"race-{round_}"
    versions = register_versions(client, name, random.Random(round_))
    order = list(versions)
    random.Random(1000 + round_).shuffle(order)
    outcomes = race(mlflow_server.url, name, order)

    passing = {v: score for v, (score, passed) in versions.items() if passed}
    best = max(passing, key=passing.get)
    chain = champion_chain(client, name)
    assert chain[0] == best, (f"@champion on v{chain[0]} ({versions[chain[0]][0]}), best passing is v{best} "
                              f"({passing[best]}); outcomes {outcomes}")
    assert set(chain) == {v for v, promoted in outcomes.items() if promoted}, (chain, outcomes)
    scores = [versions[v][0] for v in chain]
    assert scores == sorted(scores, reverse=True) and all(versions[v][1] for v in chain), (chain, versions)
    assert not client.search_registered_models(filter_string=f"name LIKE 'modelpress-lock.{name}.%'")
