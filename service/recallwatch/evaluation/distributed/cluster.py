"""Connecting to a Ray cluster: the backend's options, a fast failure when it cannot be reached.

``ray.init(address=...)`` to an address where nothing listens retries for minutes before it gives
up, so the address is probed first with a plain TCP connection bounded by
``connect_timeout_seconds``; ``ray.init`` itself then runs under the same bound. Either failing is
a ``ClusterUnavailableError`` (reason ``cluster_unavailable``): the daemon counts it and tries the
checkpoint again at its next poll.

Ray is imported here and nowhere at module level, so nothing changes where it is not installed;
asking for the ray backend there is a ``ConfigError`` naming the extra to install.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

from recallwatch.errors import ConfigError, RecallwatchError

__all__ = [
    "CLUSTER_UNAVAILABLE",
    "INSTALL_HINT",
    "ClusterUnavailableError",
    "RayOptions",
    "check_address",
    "connected",
    "import_ray",
]

#: The failure reason of an evaluation whose Ray cluster could not be reached.
CLUSTER_UNAVAILABLE = "cluster_unavailable"
INSTALL_HINT = "pip install 'recallwatch[ray]'"
_ADDRESS = re.compile(r"^(ray://)?(\[[0-9A-Fa-f:.]+\]|[^:/\[\]\s]+):(\d{1,5})$")


class ClusterUnavailableError(RecallwatchError):
    """The Ray cluster could not be reached (or was lost); retried at the next poll."""

    reason = CLUSTER_UNAVAILABLE


@dataclass(frozen=True)
class RayOptions:
    """How an evaluation runs on Ray (``evaluation.ray`` in the config)."""

    #: None: start a Ray instance on this machine for the evaluation. ``auto``: the cluster this
    #: machine belongs to (``RAY_ADDRESS``). ``ray://HOST:PORT``: Ray Client (a KubeRay head's
    #: port 10001). ``HOST:PORT``: the head's GCS, from inside the cluster's network.
    address: str | None = None
    #: Corpus shards: one Ray task each.
    shards: int = 8
    #: Resources of each task (the query encoding and each shard).
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    #: Ray's own retries of a task whose worker died (``max_retries`` of the task).
    max_retries: int = 3
    #: Bound on reaching the cluster: the TCP probe and ``ray.init`` each.
    connect_timeout_seconds: float = 10.0
    #: Ray's runtime environment for the workers (``env_vars``, ``pip``, ``working_dir`` ...).
    runtime_env: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Plain data (crosses the daemon's process boundary as JSON)."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RayOptions:
        """The options ``as_json`` wrote (other keys, such as ``kind``, are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in names})


def check_address(address: str) -> tuple[str, int] | None:
    """Validate an address; return (host, port) to probe, or None for ``auto``."""
    if address == "auto":
        return None
    match = _ADDRESS.fullmatch(address.strip())
    if match is None:
        raise ValueError(
            f"expected 'auto', 'ray://HOST:PORT' (Ray Client, e.g. ray://raycluster-head:10001) "
            f"or 'HOST:PORT' (the head's GCS, e.g. raycluster-head:6379), got {address!r}"
        )
    port = int(match.group(3))
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return match.group(2).strip("[]"), port


def import_ray() -> ModuleType:
    """Import Ray, or explain how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            [("evaluation.backend", f"the ray backend needs Ray: {INSTALL_HINT}")]
        ) from exc
    return ray


def _probe(host: str, port: int, timeout: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnavailableError(
            f"cannot reach the Ray cluster at {host}:{port} within {timeout:g} s "
            f"({exc.strerror or exc}); the evaluation is retried at the next poll"
        ) from exc


def _init_bounded(ray: ModuleType, options: RayOptions) -> None:
    """``ray.init(address)`` in a thread, given up after ``connect_timeout_seconds``."""
    outcome: list[BaseException | None] = []

    def init() -> None:
        try:
            ray.init(
                address=options.address,
                runtime_env=options.runtime_env or None,
                log_to_driver=False,
            )
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=init, name="recallwatch-ray-init", daemon=True)
    thread.start()
    thread.join(options.connect_timeout_seconds)
    if not outcome:
        raise ClusterUnavailableError(
            f"ray.init({options.address!r}) did not connect within "
            f"{options.connect_timeout_seconds:g} s; is a Ray head listening there?"
        )
    if outcome[0] is not None:
        raise ClusterUnavailableError(
            f"cannot connect to the Ray cluster at {options.address!r}: "
            f"{type(outcome[0]).__name__}: {outcome[0]}"
        ) from outcome[0]


@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[ModuleType]:
    """Ray, connected for the duration: an existing connection, the configured cluster, or a
    Ray started on this machine (``address`` unset). Disconnects only what it connected."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if options.address is None:
        ray.init(
            include_dashboard=False, runtime_env=options.runtime_env or None, log_to_driver=False
        )
    else:
        try:
            target = check_address(options.address)
        except ValueError as exc:
            raise ConfigError([("evaluation.ray.address", str(exc))]) from exc
        if target is not None:
            _probe(*target, options.connect_timeout_seconds)
        _init_bounded(ray, options)
    try:
        yield ray
    finally:
        ray.shutdown()
