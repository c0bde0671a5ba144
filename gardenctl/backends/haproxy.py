"""HAProxy stats adapter: ``show stat`` over the stats socket, or the stats page's CSV over HTTP."""

from __future__ import annotations

import csv
import io
import re
import socket

from gardenctl.backends.http import HttpClient, HttpSettings, TransportError
from gardenctl.errors import BackendError, BackendUnreachable, GardenError
from gardenctl.model import HAProxyBackend, HAProxyServer, HAProxyState, parse_int

_STATUS_RE = re.compile(r"^(?P<base>no check|[A-Z]+)(?:\s+(?P<transition>\d+/\d+))?(?:\s*\((?P<detail>[^)]*)\))?\s*(?P<rest>.*)$", re.IGNORECASE)


def parse_status(text: str) -> tuple[str, str | None, str | None]:
    """``"UP 2/3"`` -> ("UP", "2/3", None); ``"MAINT (via pg_rw/node-d)"`` -> ("MAINT", None, "via pg_rw/node-d");
    ``"no check"`` -> ("NO CHECK", None, None). Unknown words are kept as they are (F07)."""
    raw = (text or "").strip()
    if not raw:
        return "UNKNOWN", None, None
    match = _STATUS_RE.match(raw)
    if not match:
        return raw.split()[0].upper(), None, None
    base = match.group("base").upper()
    detail = match.group("detail")
    rest = (match.group("rest") or "").strip()
    if rest and not detail:
        detail = rest
    return base, match.group("transition"), detail


def parse_stat_csv(text: str, rw_backend: str | None = None, ro_backend: str | None = None) -> HAProxyState:
    """Parse ``show stat`` CSV (header line starts with ``# ``). FRONTEND rows are skipped, BACKEND rows kept apart."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise BackendError("haproxy: stats output is not HAProxy CSV (no '# pxname,...' header)")
    header = lines[0][2:].split(",")
    reader = csv.DictReader(io.StringIO("\n".join(lines[1:])), fieldnames=header)
    servers: list[HAProxyServer] = []
    backends: list[HAProxyBackend] = []
    for row in reader:
        pxname = (row.get("pxname") or "").strip()
        svname = (row.get("svname") or "").strip()
        if not pxname or svname == "FRONTEND":
            continue
        if svname == "BACKEND":
            backends.append(HAProxyBackend(name=pxname, status=(row.get("status") or "").strip(), current_sessions=parse_int(row.get("scur"))))
            continue
        status_text = (row.get("status") or "").strip()
        base, transition, detail = parse_status(status_text)
        check_raw = (row.get("check_status") or "").strip()
        in_progress = check_raw.startswith("* ")
        check_status = check_raw[2:] if in_progress else check_raw
        servers.append(
            HAProxyServer(
                backend=pxname,
                name=svname,
                status=base,
                status_text=status_text,
                transition=transition,
                status_detail=detail,
                address=(row.get("addr") or "").strip() or None,
                weight=parse_int(row.get("weight")),
                active=(row.get("act") or "").strip() == "1",
                backup=(row.get("bck") or "").strip() == "1",
                check_status=check_status or None,
                check_in_progress=in_progress,
                # HAProxy shows code 0 while a check runs (and before the first one): no code, not a code of 0.
                check_code=parse_int(row.get("check_code")) or None,
                check_duration_ms=parse_int(row.get("check_duration")),
                last_change_seconds=parse_int(row.get("lastchg")),
                current_sessions=parse_int(row.get("scur")),
            )
        )
    return HAProxyState(servers=tuple(servers), backends=tuple(backends), rw_backend=rw_backend, ro_backend=ro_backend)


class HAProxyClient:
    """Reads HAProxy's state; with a stats socket it can also run admin commands (used by the lab and drills)."""

    def __init__(
        self,
        *,
        stats_socket: str | None = None,
        stats_url: str | None = None,
        rw_backend: str = "pg_rw",
        ro_backend: str = "pg_ro",
        timeout_seconds: float = 2.0,
    ) -> None:
        if not stats_socket and not stats_url:
            raise GardenError("haproxy: neither a stats socket nor a stats URL is configured")
        self.stats_socket = stats_socket
        self.stats_url = stats_url
        self.rw_backend = rw_backend
        self.ro_backend = ro_backend
        self.timeout_seconds = timeout_seconds

    @property
    def where(self) -> str:
        return self.stats_socket or self.stats_url or "?"

    def command(self, line: str) -> str:
        """Send one command to the stats socket and return its answer."""
        if not self.stats_socket:
            raise GardenError("haproxy: admin commands need haproxy.stats-socket in the config")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_seconds)
                sock.connect(self.stats_socket)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except FileNotFoundError as exc:
            raise BackendUnreachable(f"haproxy: stats socket {self.stats_socket} does not exist (is HAProxy running?)") from exc
        except PermissionError as exc:
            raise BackendUnreachable(f"haproxy: no permission to open stats socket {self.stats_socket}") from exc
        except (ConnectionRefusedError, OSError) as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
            raise BackendUnreachable(f"haproxy: stats socket {self.stats_socket}: {reason}") from exc
        return b"".join(chunks).decode(errors="replace")

    def _fetch_csv(self) -> str:
        if self.stats_socket:
            return self.command("show stat")
        url = self.stats_url or ""
        if ";csv" not in url:
            url = url.rstrip("/") + ";csv"
        try:
            response = HttpClient(HttpSettings(timeout_seconds=self.timeout_seconds)).get(url)
        except TransportError as exc:
            raise BackendUnreachable(f"haproxy: {url}: {exc.reason}") from exc
        if response.status_code != 200:
            raise BackendError(f"haproxy: {url} answered HTTP {response.status_code}", status=response.status_code)
        return response.text

    def get_state(self) -> HAProxyState:
        return parse_stat_csv(self._fetch_csv(), self.rw_backend, self.ro_backend)

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        """``state``: ready, drain or maint."""
        answer = self.command(f"set server {backend}/{server} state {state}").strip()
        if answer:
            raise BackendError(f"haproxy: set server {backend}/{server} state {state}: {answer}")
