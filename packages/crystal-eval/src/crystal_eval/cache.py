"""On-disk feature cache keyed by content hashes (one SQLite file of pickled values).

Default location: ``$CRYSTAL_EVAL_CACHE`` if set, else ``~/.cache/crystal-eval``. Keys include a feature
version, the tolerances and the pymatgen/matminer versions, so a change of any of them is a cache miss.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ENV_VAR = "CRYSTAL_EVAL_CACHE"


def default_cache_dir() -> Path:
    """``$CRYSTAL_EVAL_CACHE`` or ``~/.cache/crystal-eval``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "crystal-eval"


class FeatureCache:
    """A key -> picklable value store. ``FeatureCache(None)`` (or ``enabled=False``) stores nothing."""

    def __init__(self, directory: str | Path | None = "default", enabled: bool = True) -> None:
        self.enabled = enabled and directory is not None
        self.path: Path | None = None
        if self.enabled:
            d = default_cache_dir() if directory == "default" else Path(directory).expanduser()
            d.mkdir(parents=True, exist_ok=True)
            self.path = d / "features-v1.sqlite"
            with self._connect() as con:
                con.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(self.path, timeout=120)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values of those ``keys`` that are present."""
        if not self.enabled:
            return {}
        keys = list(dict.fromkeys(keys))
        out: dict[str, Any] = {}
        with self._connect() as con:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = f"SELECT k, v FROM kv WHERE k IN ({','.join('?' * len(chunk))})"
                for k, v in con.execute(q, chunk):
                    try:
                        out[k] = pickle.loads(v)
                    except Exception:  # a corrupt entry is a miss
                        pass
        return out

    def get(self, key: str) -> Any | None:
        """One cached value or None."""
        return self.get_many([key]).get(key)

    def put_many(self, values: Mapping[str, Any]) -> None:
        """Store values (overwrites). Retries briefly if another process holds the database lock."""
        if not self.enabled or not values:
            return
        rows = [(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for k, v in values.items()]
        for attempt in range(5):
            try:
                with self._connect() as con:
                    con.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", rows)
                return
            except sqlite3.OperationalError:
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)

    def put(self, key: str, value: Any) -> None:
        """Store one value."""
        self.put_many({key: value})
