"""`gardenctl db prepare` on the lab's real PostgreSQL, through HAProxy's read-write port: twice, idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from gardenctl.ops.clients import postgres_endpoint
from gardenctl.ops.db_prepare import PgSession, scram_verifier, verifier_matches
from tests.conftest import run_cli

pytestmark = pytest.mark.lab

ROLES = ("supabase_admin", "authenticator", "anon", "authenticated", "service_role", "supabase_auth_admin", "supabase_storage_admin", "gardenos_app", "kratos")
PASSWORDS = {"supabase-password": "Supa_lab-pw1", "app-password": "App_lab-pw2", "kratos-password": "Kratos_lab-pw3"}


@pytest.fixture
def pwfile(tmp_path) -> Path:
    path = tmp_path / "gardenos-db.env"
    path.write_text("# as written by manifests/secrets/make-env-files\n" + "".join(f"{k}={v}\n" for k, v in PASSWORDS.items()))
    path.chmod(0o600)
    return path


def query(lab, sql: str, params=None):
    with PgSession(postgres_endpoint(lab.cluster, "rw"), autocommit=True) as s:
        return s.run(sql, params, what="test query")


def login(lab, user: str, password: str, dbname: str = "postgres") -> str:
    from gardenctl.backends.postgres import Endpoint, connect

    ep = postgres_endpoint(lab.cluster, "rw")
    conn = connect(Endpoint(ep.host, ep.port, user=user, dbname=dbname, password=password))
    try:
        return conn.execute("SELECT current_user || '@' || current_database()").fetchone()[0]
    finally:
        conn.close()


def reset(lab) -> None:
    """Undo db prepare, so the first run below starts from a database that has none of it."""
    query(lab, "DROP DATABASE IF EXISTS kratos")
    query(lab, "DROP PUBLICATION IF EXISTS supabase_realtime")
    query(lab, "DROP SCHEMA IF EXISTS auth, storage, _realtime, extensions CASCADE")
    existing = [r[0] for r in query(lab, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),))]
    for role in existing:
        query(lab, f'DROP OWNED BY "{role}"')
    for role in existing:
        query(lab, f'DROP ROLE "{role}"')


def test_prepare_twice_then_everything_exists(lab, pwfile):
    reset(lab)
    assert query(lab, "SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),)) == [(0,)]
    # scripts/setup builds pgvector for the lab (scripts/install-pgvector); where that failed, the run must say so
    has_vector = query(lab, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") == [(1,)]
    first = lab.cli("db", "prepare", "--yes", "--passwords-file", str(pwfile))
    second = lab.cli("db", "prepare", "--yes", "--passwords-file", str(pwfile))
    for result in (first, second):
        if has_vector:
            assert result.exit_code == 0, result
            assert "WARNING" not in result.stderr
        else:  # prepared, verified, WARNING, exit 1 (never a silent 0)
            assert result.exit_code == 1, result
            assert "WARNING: pgvector is not installable" in result.stderr and "postgresql-15-pgvector" in result.stderr
        assert "Error" not in result.stderr and "Traceback" not in result.stderr
        for value in PASSWORDS.values():
            assert value not in result.stdout + result.stderr
    assert "28 item(s) to create or fix" in first.stdout  # the plan, then the result: the same count
    assert "created or fixed 28 item(s)" in first.stdout and "set (verifies)" in first.stdout
    assert ("and created the vector extension" in first.stdout) is has_vector
    if has_vector:
        assert "pgvector: installed (vector 0.8.0)" in first.stdout and "pgvector: installed" in second.stdout
    assert "nothing created: everything was already there" in second.stdout
    assert "current (verifies)" in second.stdout

    roles = {r[0]: r[1:] for r in query(lab, "SELECT rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),))}
    assert set(roles) == set(ROLES)
    assert roles["supabase_admin"] == (True, True, True, True)
    assert roles["anon"] == (False, False, False, False) and roles["service_role"] == (False, False, True, False)
    assert roles["authenticator"][:2] == (True, False)
    schemas = {r[0]: r[1] for r in query(lab, "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('auth','storage','_realtime','extensions')")}
    assert set(schemas) == {"auth", "storage", "_realtime", "extensions"}
    assert query(lab, "SELECT count(*) FROM pg_publication WHERE pubname = 'supabase_realtime'") == [(1,)]
    members = query(
        lab,
        "SELECT g.rolname, count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
        "WHERE u.rolname = 'authenticator' GROUP BY g.rolname ORDER BY 1",
    )
    assert members == [("anon", 1), ("authenticated", 1), ("service_role", 1)]  # twice = no duplicate
    ext = dict(query(lab, "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname IN ('uuid-ossp','pgcrypto','vector')"))
    assert ext == {"uuid-ossp": "extensions", "pgcrypto": "extensions", **({"vector": "extensions"} if has_vector else {})}
    if has_vector:  # the type works, on the replicas too (same binaries on every lab node)
        assert query(lab, "SELECT extensions.l2_distance('[1,2,3]'::extensions.vector, '[1,2,4]'::extensions.vector)") == [(1.0,)]
    assert query(lab, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kratos'") == [("kratos",)]
    assert query(lab, "SELECT has_database_privilege('supabase_auth_admin', current_database(), 'CREATE'), has_schema_privilege('supabase_storage_admin', 'storage', 'CREATE')") == [(True, True)]
    # the roles log in through HAProxy with the passwords from the file (stored as SCRAM verifiers)
    assert login(lab, "authenticator", PASSWORDS["supabase-password"]) == "authenticator@postgres"
    assert login(lab, "kratos", PASSWORDS["kratos-password"], "kratos") == "kratos@kratos"
    stored = query(lab, "SELECT rolpassword FROM pg_authid WHERE rolname = 'gardenos_app'")[0][0]
    assert stored.startswith("SCRAM-SHA-256$4096:") and verifier_matches(stored, PASSWORDS["app-password"], "gardenos_app")
    # the journal has both runs
    journal = [json.loads(line) for line in (lab.state_dir / "journal.jsonl").read_text().splitlines()]
    runs = [e for e in journal if e["command"] == "db prepare"][-2:]
    assert [e["outcome"] for e in runs] == ["succeeded", "succeeded"] and runs[-1]["changed"] is False


def test_no_vector_is_complete_json_and_dry_run(lab, pwfile):
    result = lab.cli("db", "prepare", "--yes", "--no-vector", "--passwords-file", str(pwfile), "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert doc["kind"] == "DbPrepareResult" and doc["complete"] is True and doc["exit_code"] == 0 and doc["warnings"] == []
    has_vector = query(lab, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") == [(1,)]
    assert doc["vector"]["wanted"] is False and doc["vector"]["available"] is has_vector  # reported, not required
    assert set(doc["vector"]) == {"wanted", "available", "installed_version", "available_version"}
    assert all(item["ok"] for item in doc["items"]) and len(doc["items"]) == 28
    dry = lab.cli("db", "prepare", "--dry-run", "-o", "json")  # no passwords given: the roles keep theirs
    assert dry.exit_code == 0, dry
    plan = json.loads(dry.stdout)
    assert plan["kind"] == "DbPreparePlan" and plan["missing"] == [] and plan["ok"] is True
    assert {p["action"] for p in plan["passwords"]} == {"kept"}


def test_login_role_without_password_is_refused(lab, pwfile):
    lab.cli("db", "prepare", "--yes", "--no-vector", "--passwords-file", str(pwfile))
    query(lab, "ALTER ROLE gardenos_app PASSWORD NULL")
    try:
        refused = lab.cli("db", "prepare", "--yes", "--no-vector")
        assert refused.exit_code == 7, refused
        assert "Error: db prepare refused: no password for role gardenos_app (app-password)" in refused.stderr
        assert "GARDENCTL_DB_APP_PASSWORD" in refused.stderr
        by_env = lab.cli("db", "prepare", "--yes", "--no-vector", env={"GARDENCTL_DB_APP_PASSWORD": "From_env-1"})
        assert by_env.exit_code == 0, by_env
        assert login(lab, "gardenos_app", "From_env-1") == "gardenos_app@postgres"
    finally:
        lab.cli("db", "prepare", "--yes", "--no-vector", "--passwords-file", str(pwfile))


def test_bad_password_file_and_not_a_superuser(lab, pwfile, tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("supabase-password=has@sign\n")
    result = lab.cli("db", "prepare", "--yes", "--passwords-file", str(bad))
    assert result.exit_code == 4 and "outside [A-Za-z0-9_-]" in result.stderr and "has@sign" not in result.stderr
    lab.cli("db", "prepare", "--yes", "--no-vector", "--passwords-file", str(pwfile))
    config = yaml.safe_load(lab.config_path.read_text())
    secret = tmp_path / "auth.pw"
    secret.write_text(PASSWORDS["supabase-password"])
    config["clusters"]["lab"]["postgres"] = {"user": "authenticator", "dbname": "postgres", "password-file": str(secret)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("db", "prepare", "--yes", config=path, env={"GARDENCTL_STATE_DIR": str(lab.state_dir)})
    assert result.exit_code == 7 and "not a superuser" in result.stderr


def test_two_runs_at_once_both_succeed(lab, pwfile):
    results = []

    def run():
        results.append(lab.cli("db", "prepare", "--yes", "--no-vector", "--passwords-file", str(pwfile)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.exit_code for r in results] == [0, 0], results
    assert query(lab, "SELECT count(*) FROM pg_publication WHERE pubname = 'supabase_realtime'") == [(1,)]


def test_scram_verifier_is_what_postgres_accepts(lab):
    # a verifier computed here logs in through HAProxy, and PostgreSQL's own one verifies here
    query(lab, "DROP ROLE IF EXISTS gardenctl_scram_probe")
    try:
        query(lab, f"CREATE ROLE gardenctl_scram_probe LOGIN PASSWORD '{scram_verifier('Probe-pw_9')}'")
        assert login(lab, "gardenctl_scram_probe", "Probe-pw_9") == "gardenctl_scram_probe@postgres"
        query(lab, "ALTER ROLE gardenctl_scram_probe PASSWORD 'Other-pw_8'")
        stored = query(lab, "SELECT rolpassword FROM pg_authid WHERE rolname = 'gardenctl_scram_probe'")[0][0]
        assert verifier_matches(stored, "Other-pw_8", "gardenctl_scram_probe") and not verifier_matches(stored, "Probe-pw_9", "gardenctl_scram_probe")
    finally:
        query(lab, "DROP ROLE IF EXISTS gardenctl_scram_probe")


def test_help_teaches_the_exit_codes():
    result = subprocess.run([sys.executable, "-m", "gardenctl", "db", "prepare", "--help"], capture_output=True, text=True, env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # help is wrapped to the terminal
    assert "1 prepared and verified EXCEPT" in text and "--passwords-file" in text and "--no-vector" in text
