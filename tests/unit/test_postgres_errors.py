"""libpq's multi-line connection errors become one line with the reason kept (a new user saw only the advice line)."""
from __future__ import annotations

import socket

import pytest

from gardenctl.backends.postgres import Endpoint, connect, pg_reason
from gardenctl.errors import BackendUnreachable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_one_line_with_the_reason():
    port = closed_port()
    with pytest.raises(BackendUnreachable) as info:
        connect(Endpoint("127.0.0.1", port, user="x", dbname="y"))
    assert info.value.message == f"postgres: 127.0.0.1:{port}: connection refused"


def test_every_attempt_of_a_multi_host_connection_is_reduced_to_its_reason():
    import psycopg

    ports = closed_port(), closed_port()
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(host="127.0.0.1,127.0.0.1", port=f"{ports[0]},{ports[1]}", user="x", dbname="y", connect_timeout=2)
    assert "\n" in str(info.value)  # what libpq says is several lines ...
    assert pg_reason(info.value) == "connection refused"  # ... and the reason is what is left


def test_a_statement_error_keeps_the_servers_primary_message():
    class Diag:
        message_primary = 'relation "nope" does not exist'

    class Err(Exception):
        diag = Diag()

    assert pg_reason(Err('ERROR:  relation "nope" does not exist\nLINE 1: SELECT * FROM nope\n ^')) == 'relation "nope" does not exist'
