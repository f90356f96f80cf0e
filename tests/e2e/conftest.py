"""pytest fixtures for tests against a real control plane; the helpers themselves live in kube.py.

`cluster` starts one etcd + kube-apiserver per test session, on free ports in a private directory, and
stops it when the session ends, also when tests fail or the run is interrupted (SIGINT or SIGTERM).
`workload_cluster` is a cluster that runs pods: controllers, scheduler and the node agent as well.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest

from kube import Cluster, echo_image, tools_bin


def _interrupt(signum: int, frame: object) -> None:
    # pytest turns KeyboardInterrupt into an orderly stop that still runs fixture teardown;
    # Python's default SIGTERM would end the process with the cluster still running.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def tools() -> Path:
    """The directory of kube-apiserver, etcd, kubectl and helm (built on first use, then cached)."""
    return tools_bin()


def _running(started: Cluster) -> Iterator[Cluster]:
    """Starts the cluster, yields it, and stops it however the session ends."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started.start()
        yield started
    finally:
        started.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def cluster(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running control plane shared by the session's tests."""
    yield from _running(Cluster(tmp_path_factory.mktemp("cluster"), tools))


@pytest.fixture(scope="session")
def workload_cluster(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running cluster with a node: Deployments make pods that run on docker and answer on their pod IPs.
    Its `echo_image` attribute names the test echo image (built when missing)."""
    full = Cluster(tmp_path_factory.mktemp("workloads"), tools, workloads=True)
    full.echo_image = echo_image()  # type: ignore[attr-defined]
    yield from _running(full)
