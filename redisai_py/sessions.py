"""Session cache: one backend session per stored model (and one compiled
form per stored script), made on demand.

The shim keeps only a model's blob and metadata; the framework object lives
here under the model's id. A session is made by the loader when a client
stores a model, or lazily by the first run of a model that came from RDB,
AOF or a replica's stream. When the model's last reference goes away the
shim posts its id and its session dropper thread (the loader, once it takes
such work) drops the session at once, busy server or idle. Under a
loaded-session budget (docs/model_sessions.md) the loader also drops the
sessions of evicted models here; the model stays, and its next run makes
the session again from the blob.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from redisai_py import backends
from redisai_py.backends.base import ModelSession, ModelSpec


class StoredModel(Protocol):
    """What the shim's Model object offers (its blob through the buffer protocol)."""

    id: int
    backend: str
    device: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    warmup: int


class Closable(Protocol):
    def close(self) -> None: ...


class SessionCache:
    """Sessions by model id. Thread-safe: workers of several queues share it."""

    def __init__(self, settings: dict[str, int]) -> None:
        self._settings = settings
        self._sessions: dict[int, Any] = {}
        self._making: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def spec_of(self, model: StoredModel) -> ModelSpec:
        return ModelSpec(
            backend=model.backend,
            device=model.device,
            inputs=model.inputs,
            outputs=model.outputs,
            intra_op_threads=self._settings.get("intra_op_parallelism", 0),
            inter_op_threads=self._settings.get("inter_op_parallelism", 0),
            execution_timeout_ms=self._settings.get("model_execution_timeout", 0),
            memory_limit_mb=self._settings.get("backend_memory_limit", 0),
        )

    def get(self, model: StoredModel) -> ModelSession:
        """The session of `model`, made from its blob if there is none yet."""
        session = self._sessions.get(model.id)
        if session is not None:
            return session
        return self.get_or_make(
            model.id, lambda: backends.load_model(bytes(memoryview(model)), self.spec_of(model)))  # type: ignore[arg-type]

    def get_or_make(self, key: int, make: Callable[[], Closable]) -> Any:
        """The cached object under `key`, made by `make()` the first time.
        Two workers asking at once make it once."""
        found = self._sessions.get(key)
        if found is not None:
            return found
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:
            found = self._sessions.get(key)
            if found is None:
                found = make()
                self._sessions[key] = found
        with self._lock:
            self._making.pop(key, None)
        return found

    def holds(self, key: int, found: object) -> bool:
        """Whether `found` is still the object cached under `key` (not dropped since)."""
        return self._sessions.get(key) is found

    def drop(self, ids: list[int]) -> None:
        for model_id in ids:
            session = self._sessions.pop(model_id, None)
            if session is not None:
                session.close()

    def __len__(self) -> int:
        return len(self._sessions)
