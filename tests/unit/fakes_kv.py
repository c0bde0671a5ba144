"""An in-memory etcd key/value store with the interface `gardenctl.ops.migrate.state.PhaseStore` uses
(`get`, `compare_and_set`), with etcd's revision semantics: one global revision, bumped by every write; a key's
``mod_revision`` is the revision of its last write; CAS with ``expected_mod_revision=None`` means "only if absent".

``before_cas`` lets a test run another writer right before a CAS is evaluated (a lost race, deterministically).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class FakeKeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    version: int


class FakeKV:
    def __init__(self) -> None:
        self.revision = 1
        self.data: dict[bytes, FakeKeyValue] = {}
        self.writes: list[tuple[bytes, bytes]] = []
        self.cas_calls = 0
        self.before_cas: Callable[[], None] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _b(key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else key

    def get(self, key: str | bytes) -> FakeKeyValue | None:
        return self.data.get(self._b(key))

    def put(self, key: str | bytes, value: str | bytes) -> None:
        with self._lock:
            self._write(self._b(key), self._b(value))

    def _write(self, key: bytes, value: bytes) -> None:
        self.revision += 1
        old = self.data.get(key)
        self.data[key] = FakeKeyValue(key, value, self.revision, (old.version if old else 0) + 1)
        self.writes.append((key, value))

    def compare_and_set(self, key: str | bytes, value: str | bytes, *, expected_mod_revision: int | None) -> bool:
        hook, self.before_cas = self.before_cas, None
        if hook is not None:
            hook()
        with self._lock:
            self.cas_calls += 1
            k = self._b(key)
            current = self.data.get(k)
            current_rev = current.mod_revision if current else 0
            if current_rev != (expected_mod_revision or 0):
                return False
            self._write(k, self._b(value))
            return True
