"""Secrets gardenctl generates for a cluster: PostgreSQL passwords, the Patroni REST password, the K3s token.

Generated once with `secrets` and kept in ``<state dir>/bootstrap/<cluster>/secrets.json`` (directory 0700, file
0600), so a re-run renders byte-identical files and K3s flags. `redacted()` gives the same shape with every value
replaced, for `bootstrap render` and logs.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from gardenctl.errors import ConfigError

REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class BootstrapSecrets:
    superuser_password: str
    replication_password: str
    rewind_password: str
    rest_password: str
    k3s_token: str | None
    etcd_cluster_token: str

    def redacted(self) -> "BootstrapSecrets":
        return BootstrapSecrets(**{f.name: REDACTED for f in fields(self)})

    def with_k3s_token(self, token: str) -> "BootstrapSecrets":
        return replace(self, k3s_token=token)


def secrets_path(state_dir: Path, cluster: str) -> Path:
    return Path(state_dir) / "bootstrap" / cluster / "secrets.json"


def generate() -> BootstrapSecrets:
    return BootstrapSecrets(
        superuser_password=_secrets.token_urlsafe(24),
        replication_password=_secrets.token_urlsafe(24),
        rewind_password=_secrets.token_urlsafe(24),
        rest_password=_secrets.token_urlsafe(24),
        k3s_token=_secrets.token_hex(32),
        etcd_cluster_token=f"gardenos-{_secrets.token_hex(6)}",
    )


def load(state_dir: Path, cluster: str) -> BootstrapSecrets | None:
    path = secrets_path(state_dir, cluster)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable secrets file ({exc})", hint="restore it from a backup; a new one would change every password") from exc
    known = {f.name for f in fields(BootstrapSecrets)}
    try:
        return BootstrapSecrets(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"{path}: incomplete secrets file ({exc})") from exc


def save(state_dir: Path, cluster: str, value: BootstrapSecrets) -> Path:
    path = secrets_path(state_dir, cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".secrets.", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(value), fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_or_create(state_dir: Path, cluster: str) -> tuple[BootstrapSecrets, bool]:
    """(secrets, created). Existing secrets are always reused."""
    existing = load(state_dir, cluster)
    if existing is not None:
        return existing, False
    value = generate()
    save(state_dir, cluster, value)
    return value, True
