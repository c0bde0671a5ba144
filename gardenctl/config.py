"""Configuration: one YAML file with named clusters and a current context (like kubectl).

Precedence is decided here, once: defaults < config file < ``GARDENCTL_*`` environment < command-line flags.
Adapters receive the resolved values in their constructors and never read the environment themselves.

Every problem is reported as one `ConfigError` naming the file, the line and the key path, e.g.
``/home/op/.config/gardenctl/config.yaml:12: clusters.prod.patroni.endpoints: expected a list, got a string``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from gardenctl import yamltext
from gardenctl.errors import ConfigError

CONFIG_ENV = "GARDENCTL_CONFIG"
CONTEXT_ENV = "GARDENCTL_CONTEXT"
STATE_ENV = "GARDENCTL_STATE_DIR"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gardenctl" / "config.yaml"


def default_state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gardenctl"


# ------------------------------------------------------------------------------------------------ YAML with lines


class _Map(dict):
    """A mapping that remembers the line of each key (1-based) and of itself."""

    line: int = 0
    key_lines: dict[str, int]


class _Seq(list):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConfigError(f"line {key_node.start_mark.line + 1}: keys must be strings, got {key!r}")
        if key in result:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_yaml_with_lines(text: str, source: str) -> Any:
    """Parse YAML; a syntax error becomes one ConfigError naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}{line}: malformed YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {exc}") from exc


class Section:
    """A cursor over one mapping of the file, producing errors that name file, line and key path."""

    def __init__(self, data: Any, path: str, source: str, line: int = 0) -> None:
        self.source = source
        self.path = path
        if data is None:
            data = _Map()
            data.line = line
            data.key_lines = {}
        if not isinstance(data, dict):
            raise self.error(f"expected a mapping, got {_kind(data)}", line or getattr(data, "line", 0))
        self.data: dict[str, Any] = data
        # The line of the key that opens this section (where a user looks for it), else where its mapping starts.
        self.line = line or getattr(data, "line", 0)
        self._used: set[str] = set()

    def error(self, message: str, line: int | None = None, key: str | None = None) -> ConfigError:
        where = f"{self.source}:{line}" if line else self.source
        keypath = f"{self.path}.{key}" if key and self.path else (key or self.path)
        return ConfigError(f"{where}: {keypath}: {message}" if keypath else f"{where}: {message}")

    def key_line(self, key: str) -> int:
        return getattr(self.data, "key_lines", {}).get(key, self.line)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        self._used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error("is required but missing", self.line, key)
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool and (kind is int or kind is float):
            raise self.error(f"expected {_name(kind)}, got a boolean", self.key_line(key), key)
        if not isinstance(value, kind):
            raise self.error(f"expected {_name(kind)}, got {_kind(value)}", self.key_line(key), key)
        return value

    def get_str_list(self, key: str, *, required: bool = False, check: Callable[[str], str | None] | None = None) -> tuple[str, ...]:
        raw = self.get(key, (list, str), None, required=required)
        if raw is None:
            return ()
        if isinstance(raw, str):
            raise self.error("expected a list, got a string (write it as a YAML list: [a, b])", self.key_line(key), key)
        items: list[str] = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise self.error(f"item {i + 1}: expected a string, got {_kind(item)}", getattr(raw, "line", self.key_line(key)), key)
            if check is not None:
                problem = check(item)
                if problem:
                    raise self.error(f"item {i + 1} {item!r}: {problem}", getattr(raw, "line", self.key_line(key)), key)
            items.append(item)
        return tuple(items)

    def section(self, key: str, *, required: bool = False) -> "Section":
        self._used.add(key)
        if required and not self.has(key):
            raise self.error("is required but missing", self.line, key)
        sub_path = f"{self.path}.{key}" if self.path else key
        return Section(self.data.get(key), sub_path, self.source, self.key_line(key))

    def raw(self, key: str) -> Any:
        self._used.add(key)
        return self.data.get(key)

    def reject_unknown(self, allowed_extra: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key not in self._used and key not in allowed_extra:
                raise self.error("unknown key (check the spelling; see README 'Configuration')", self.key_line(key), key)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL"
    try:
        parts.port
    except ValueError:
        return "has an invalid port"
    return None


def _check_hostport(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "expected host:port"
    return None


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


# ------------------------------------------------------------------------------------------------ typed config


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret named by where it lives, resolved only when used. Never printed."""

    env: str | None = None
    file: str | None = None

    def resolve(self, what: str) -> str | None:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{what}: environment variable {self.env} is not set")
            return value
        if self.file:
            try:
                return Path(self.file).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{what}: cannot read password file {self.file}: {exc.strerror}") from exc
        return None

    @property
    def configured(self) -> bool:
        return bool(self.env or self.file)

    def describe(self) -> str | None:
        if self.env:
            return f"env:{self.env}"
        if self.file:
            return f"file:{self.file}"
        return None


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class PatroniSettings:
    endpoints: tuple[str, ...]
    username: str | None = None
    password: Secret = field(default_factory=Secret)
    tls: TLSConfig = field(default_factory=TLSConfig)


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    endpoints: tuple[str, ...]
    username: str | None = None
    password: Secret = field(default_factory=Secret)
    tls: TLSConfig = field(default_factory=TLSConfig)
    quota_bytes: int = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class HAProxySettings:
    stats_socket: str | None = None
    stats_url: str | None = None
    rw_backend: str = "pg_rw"
    ro_backend: str = "pg_ro"
    rw_address: str | None = None
    ro_address: str | None = None


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    user: str = "postgres"
    dbname: str = "postgres"
    password: Secret = field(default_factory=Secret)
    sslmode: str = "prefer"
    connect_timeout_seconds: int = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    lag_warning_bytes: int = 1024 * 1024
    lag_critical_bytes: int = 16 * 1024 * 1024
    maintenance_critical_minutes: int = 60
    etcd_db_warning_percent: int = 80


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str
    scope: str | None
    patroni: PatroniSettings
    etcd: EtcdSettings
    haproxy: HAProxySettings
    postgres: PostgresSettings
    thresholds: Thresholds = field(default_factory=Thresholds)
    request_timeout_seconds: float = 2.0
    lab_dir: str | None = None
    # Sections owned by later features (bootstrap, k3s, drills over SSH): kept raw, validated by their owners.
    hetzner: Any = None
    kubernetes: Any = None
    hosts: Any = None
    source: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    exists: bool
    current_context: str | None
    clusters: dict[str, ClusterConfig]
    raw: dict[str, Any]


_SECTIONS_OWNED_ELSEWHERE = ("hetzner", "kubernetes", "hosts")


def _secret(sec: Section, prefix: str = "password") -> Secret:
    if sec.has(prefix):
        err = sec.error("inline secrets are not accepted", sec.key_line(prefix), prefix)
        err.hint = f"use {prefix}-env: VARIABLE or {prefix}-file: /path/to/file"
        raise err
    env = sec.get(f"{prefix}-env", str)
    file = sec.get(f"{prefix}-file", str)
    if env and file:
        raise sec.error(f"set {prefix}-env or {prefix}-file, not both", sec.key_line(f"{prefix}-file"))
    return Secret(env=env, file=file)


def _tls(sec: Section) -> TLSConfig:
    return TLSConfig(
        ca_file=sec.get("ca-file", str),
        cert_file=sec.get("cert-file", str),
        key_file=sec.get("key-file", str),
        verify=sec.get("verify", bool, True),
    )


def _positive_int(sec: Section, key: str, default: int) -> int:
    value = sec.get(key, int, default)
    if value <= 0:
        raise sec.error("must be a positive integer", sec.key_line(key), key)
    return value


def parse_cluster(name: str, sec: Section) -> ClusterConfig:
    pat = sec.section("patroni", required=True)
    patroni = PatroniSettings(
        endpoints=pat.get_str_list("endpoints", required=True, check=_check_url),
        username=pat.get("username", str),
        password=_secret(pat),
        tls=_tls(pat),
    )
    if not patroni.endpoints:
        raise pat.error("needs at least one endpoint", pat.key_line("endpoints"), "endpoints")
    pat.reject_unknown()

    et = sec.section("etcd", required=True)
    etcd = EtcdSettings(
        endpoints=et.get_str_list("endpoints", required=True, check=_check_url),
        username=et.get("username", str),
        password=_secret(et),
        tls=_tls(et),
        quota_bytes=_positive_int(et, "quota-bytes", 2 * 1024**3),
    )
    if not etcd.endpoints:
        raise et.error("needs at least one endpoint", et.key_line("endpoints"), "endpoints")
    et.reject_unknown()

    hp = sec.section("haproxy", required=True)
    stats_url = hp.get("stats-url", str)
    if stats_url and _check_url(stats_url):
        raise hp.error(_check_url(stats_url) or "", hp.key_line("stats-url"), "stats-url")
    haproxy = HAProxySettings(
        stats_socket=hp.get("stats-socket", str),
        stats_url=stats_url,
        rw_backend=hp.get("rw-backend", str, "pg_rw"),
        ro_backend=hp.get("ro-backend", str, "pg_ro"),
        rw_address=hp.get("rw-address", str),
        ro_address=hp.get("ro-address", str),
    )
    for key in ("rw-address", "ro-address"):
        value = hp.get(key, str)
        if value and _check_hostport(value):
            raise hp.error(f"{value!r}: expected host:port", hp.key_line(key), key)
    if not haproxy.stats_socket and not haproxy.stats_url:
        raise hp.error("needs stats-socket (a path) or stats-url (an http URL ending in ;csv)", hp.line)
    hp.reject_unknown()

    pg = sec.section("postgres")
    postgres = PostgresSettings(
        user=pg.get("user", str, "postgres"),
        dbname=pg.get("dbname", str, "postgres"),
        password=_secret(pg),
        sslmode=pg.get("sslmode", str, "prefer"),
        connect_timeout_seconds=_positive_int(pg, "connect-timeout-seconds", 3),
    )
    pg.reject_unknown()

    th = sec.section("thresholds")
    d = Thresholds()
    thresholds = Thresholds(
        lag_warning_bytes=_positive_int(th, "lag-warning-bytes", d.lag_warning_bytes),
        lag_critical_bytes=_positive_int(th, "lag-critical-bytes", d.lag_critical_bytes),
        maintenance_critical_minutes=_positive_int(th, "maintenance-critical-minutes", d.maintenance_critical_minutes),
        etcd_db_warning_percent=_positive_int(th, "etcd-db-warning-percent", d.etcd_db_warning_percent),
    )
    if thresholds.lag_critical_bytes < thresholds.lag_warning_bytes:
        raise th.error("lag-critical-bytes must not be below lag-warning-bytes", th.key_line("lag-critical-bytes"))
    th.reject_unknown()

    timeout = sec.get("request-timeout-seconds", float, 2.0)
    if timeout <= 0:
        raise sec.error("must be positive", sec.key_line("request-timeout-seconds"), "request-timeout-seconds")

    cluster = ClusterConfig(
        name=name,
        scope=sec.get("scope", str),
        patroni=patroni,
        etcd=etcd,
        haproxy=haproxy,
        postgres=postgres,
        thresholds=thresholds,
        request_timeout_seconds=timeout,
        lab_dir=sec.get("lab-dir", str),
        hetzner=sec.raw("hetzner"),
        kubernetes=sec.raw("kubernetes"),
        hosts=sec.raw("hosts"),
        source=sec.source,
        line=sec.line,
    )
    sec.reject_unknown()
    return cluster


def parse_config(text: str, path: Path) -> Config:
    source = str(path)
    data = load_yaml_with_lines(text, source)
    if data is None:
        data = _Map()
        data.line = 1
        data.key_lines = {}
    top = Section(data, "", source, 1)
    current = top.get("current-context", str)
    clusters_sec = top.section("clusters")
    clusters: dict[str, ClusterConfig] = {}
    for name in list(clusters_sec.data):
        if not isinstance(name, str) or not name:
            raise clusters_sec.error("cluster names must be non-empty strings", clusters_sec.key_line(name))
        clusters[name] = parse_cluster(name, clusters_sec.section(name))
    top.reject_unknown()
    if current is not None and current not in clusters:
        known = ", ".join(sorted(clusters)) or "none"
        raise ConfigError(
            f"{source}:{top.key_line('current-context')}: current-context: no cluster named {current!r} (known: {known})"
        )
    return Config(path=path, exists=True, current_context=current, clusters=clusters, raw=dict(data))


def load_config(path: Path | None = None) -> Config:
    """Read the config file. A missing file is an empty config (``exists`` False), not an error: the command that
    needs a cluster decides what to say."""
    path = Path(path) if path is not None else Path(os.environ.get(CONFIG_ENV) or default_config_path())
    path = path.expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Config(path=path, exists=False, current_context=None, clusters={}, raw={})
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a config file") from exc
    except PermissionError as exc:
        raise ConfigError(f"{path}: permission denied") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (UTF-8 expected)") from exc
    return parse_config(text, path)


def select_cluster(config: Config, context: str | None = None) -> ClusterConfig:
    """The cluster named by ``context`` (flag or GARDENCTL_CONTEXT, already merged by the caller) or the current one."""
    if not config.exists:
        if config.path.expanduser() != default_config_path().expanduser():  # --config / GARDENCTL_CONFIG named it
            hint = (
                "check the path given with --config / GARDENCTL_CONFIG; `gardenctl lab up --config "
                f"{config.path} --dir DIR` starts a lab of your own and writes it with a 'lab' context (format: README, Configuration)"
            )
        else:
            hint = (
                "run `gardenctl lab up` to start a local lab and create a 'lab' context, "
                "or write the file by hand (README: Configuration) and point --config / GARDENCTL_CONFIG at it"
            )
        raise ConfigError(f"no config file at {config.path}", hint=hint)
    name = context or config.current_context
    if not config.clusters:
        raise ConfigError(
            f"{config.path}: no clusters in it" + (f" (so no context {name!r})" if name else ""),
            hint="run `gardenctl lab up` to start a local lab and create a 'lab' context, or add a cluster (README: Configuration)",
        )
    if name is None:
        if len(config.clusters) == 1:
            return next(iter(config.clusters.values()))
        raise ConfigError(
            f"{config.path}: no current-context set and no --context given",
            hint="gardenctl config use-context NAME (known: " + (", ".join(sorted(config.clusters)) or "none") + ")",
        )
    if name not in config.clusters:
        known = ", ".join(sorted(config.clusters)) or "none"
        raise ConfigError(
            f"unknown context {name!r} in {config.path} (known: {known})",
            hint="gardenctl config get-contexts",
        )
    return config.clusters[name]


# ------------------------------------------------------------------------------------------------ writing


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def write_raw(path: Path, raw: dict[str, Any]) -> None:
    text = yamltext.dump(_plain(raw))
    parse_config(text, path)  # never write a file we could not read back
    _atomic_write(path, text)


def set_current_context(config: Config, name: str) -> None:
    if name not in config.clusters:
        known = ", ".join(sorted(config.clusters)) or "none"
        raise ConfigError(f"unknown context {name!r} in {config.path} (known: {known})", hint="gardenctl config get-contexts")
    raw = _plain(config.raw)
    raw["current-context"] = name
    write_raw(config.path, raw)


def upsert_cluster(path: Path, name: str, cluster_raw: dict[str, Any], *, make_current: bool = True) -> None:
    """Add or replace one cluster in the file, keeping every other cluster as it is."""
    config = load_config(path)
    raw = _plain(config.raw) if config.exists else {}
    clusters = raw.get("clusters") or {}
    clusters[name] = cluster_raw
    new: dict[str, Any] = {}
    if make_current or raw.get("current-context"):
        new["current-context"] = name if make_current else raw["current-context"]
    new["clusters"] = clusters
    for key, value in raw.items():
        if key not in new:
            new[key] = value
    write_raw(path, new)


def _lab_context_names(clusters: dict[str, Any], lab_dir: Path) -> list[str]:
    target = Path(lab_dir).resolve()
    return [
        name
        for name, cluster in clusters.items()
        if isinstance(cluster, dict) and cluster.get("lab-dir") and Path(str(cluster["lab-dir"])).expanduser().resolve() == target
    ]


def lab_contexts(path: Path | None, lab_dir: Path) -> tuple[Path, list[str]]:
    """The config file and the names of its contexts whose ``lab-dir`` is ``lab_dir`` (none when there is no file)."""
    config = load_config(path)
    if not config.exists:
        return config.path, []
    return config.path, _lab_context_names(_plain(config.raw).get("clusters") or {}, lab_dir)


def remove_lab_contexts(path: Path | None, lab_dir: Path) -> tuple[Path, list[str]]:
    """Drop every context whose ``lab-dir`` is ``lab_dir`` (after ``lab down --purge`` they point at nothing) and
    unset ``current-context`` if it was one of them. Returns the file and the names removed (none: file untouched)."""
    config = load_config(path)
    if not config.exists:
        return config.path, []
    raw = _plain(config.raw)
    clusters = raw.get("clusters") or {}
    gone = _lab_context_names(clusters, lab_dir)
    if not gone:
        return config.path, []
    for name in gone:
        del clusters[name]
    raw["clusters"] = clusters
    if raw.get("current-context") in gone:
        del raw["current-context"]
    write_raw(config.path, raw)
    return config.path, gone


SECRET_KEY_HINTS = ("password", "token", "secret", "key-file")


def redacted(raw: Any) -> Any:
    """The raw config with secret references kept (they are names, not values) and anything secret-looking masked."""
    if isinstance(raw, dict):
        out = {}
        for key, value in raw.items():
            lowered = str(key).lower()
            if any(h in lowered for h in ("password", "token", "secret")) and not lowered.endswith(("-env", "-file", "-command")):
                out[key] = "REDACTED"
            else:
                out[key] = redacted(value)
        return out
    if isinstance(raw, list):
        return [redacted(v) for v in raw]
    return raw
