"""Per-invocation settings, free of typer and rich so the fast path (cli/fast.py) can use them too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardenctl.config import CONTEXT_ENV, ClusterConfig, Config, default_state_dir, load_config, select_cluster


@dataclass
class RootOptions:
    config_path: Path | None = None
    context: str | None = None
    debug: bool = False


class Env:
    """Resolved per-invocation settings. Flags win over GARDENCTL_* environment, which wins over the config file.
    ``out`` (stdout: results only) and ``err`` (stderr: progress, warnings) are rich consoles made on first use."""

    def __init__(self, config_path: Path | None, context: str | None, debug: bool = False) -> None:
        self.config_path = config_path
        self.context = context
        self.debug = debug
        self._config: Config | None = None
        self._out: Any = None
        self._err: Any = None

    @classmethod
    def resolve(cls, root: RootOptions | None, config: Path | None = None, context: str | None = None) -> "Env":
        root = root or RootOptions()
        return cls(
            config_path=config or root.config_path,
            context=context or root.context or os.environ.get(CONTEXT_ENV) or None,
            debug=root.debug,
        )

    @property
    def out(self) -> Any:
        if self._out is None:
            from gardenctl.render import make_console

            self._out = make_console()
        return self._out

    @property
    def err(self) -> Any:
        if self._err is None:
            from gardenctl.render import make_console

            self._err = make_console(stderr=True)
        return self._err

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def cluster(self) -> ClusterConfig:
        return select_cluster(self.config(), self.context)

    @property
    def state_dir(self) -> Path:
        return default_state_dir()

    def progress(self, message: str) -> None:
        """Progress goes to stderr; never mixed into the result on stdout."""
        self.err.print(message, highlight=False, markup=False, soft_wrap=True)
