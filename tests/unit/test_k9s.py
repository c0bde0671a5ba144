"""K9s integration: the plugins file (checked against k9s' own schema and plugin fields), merging it into a user's
file, the `kubernetes:` config section, and `gardenctl k9s` / `k9s exec` as a user runs them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
import yaml

from gardenctl.config import parse_config
from gardenctl.errors import ConfigError, PreconditionFailed
from gardenctl.ops.k9s import (
    PLUGIN_PREFIX,
    cluster_for_kube_context,
    default_plugins_path,
    dump_plugins,
    kubernetes_settings,
    merge_plugins,
    plan_launch,
    plugins,
    plugins_document,
    resolve_context,
)

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "k9s-plugins.json").read_text())
# The YAML fields of k9s' Go struct `config.Plugin` (internal/config/plugin.go) and their Go types.
PLUGIN_FIELDS = {
    "scopes": list,
    "args": list,
    "shortCut": str,
    "override": bool,
    "pipes": list,
    "description": str,
    "command": str,
    "confirm": bool,
    "background": bool,
    "dangerous": bool,
    "overwriteOutput": bool,
}
K9S_VARIABLES = {"$NAMESPACE", "$NAME", "$CONTAINER", "$FILTER", "$KUBECONFIG", "$CLUSTER", "$CONTEXT", "$USER", "$GROUPS", "$POD"}

CLUSTER = """
    patroni: {endpoints: ["http://127.0.0.1:1"]}
    etcd: {endpoints: ["http://127.0.0.1:2"]}
    haproxy: {stats-url: "http://127.0.0.1:3/;csv"}
"""


def k9s_validate(document: dict) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(document)
    for name, body in document["plugins"].items():
        for key, value in body.items():
            assert key in PLUGIN_FIELDS, f"{name}: k9s has no plugin field {key!r}"
            assert isinstance(value, PLUGIN_FIELDS[key]), f"{name}.{key}: {value!r} is not {PLUGIN_FIELDS[key].__name__}"
            if PLUGIN_FIELDS[key] is list:
                assert all(isinstance(v, str) for v in value), f"{name}.{key}: k9s decodes a list of strings"


# --------------------------------------------------------------------------------------------- the plugins


def test_generated_plugins_pass_k9s_schema_and_field_types():
    document = yaml.safe_load(dump_plugins(plugins_document()))
    k9s_validate(document)
    assert set(document) == {"plugins"}
    assert set(document["plugins"]) == {f"{PLUGIN_PREFIX}{n}" for n in ("status", "check", "drills", "switchover")}


def test_the_schema_check_can_fail():
    bad = plugins_document()
    bad["plugins"]["gardenctl-status"]["background"] = "no"
    with pytest.raises(jsonschema.ValidationError):
        k9s_validate(bad)
    missing = plugins_document()
    del missing["plugins"]["gardenctl-check"]["scopes"]
    with pytest.raises(jsonschema.ValidationError):
        k9s_validate(missing)
    unknown = plugins_document()
    unknown["plugins"]["gardenctl-check"]["shortcut"] = "x"
    with pytest.raises(AssertionError, match="no plugin field"):
        k9s_validate(unknown)
    with pytest.raises(jsonschema.ValidationError):
        k9s_validate({"plugin": plugins()})  # the pre-0.32 top-level key


def test_plugin_semantics():
    ps = plugins()
    assert len({p["shortCut"].lower() for p in ps.values()}) == len(ps), "shortcuts must be distinct"
    for name, p in ps.items():
        assert p["background"] is False, f"{name}: output must stay visible"
        assert p["command"] == "gardenctl"
        assert p["args"][:5] == ["k9s", "exec", "--kube-context", "$CONTEXT", "--pause"]
        assert p["scopes"] and "all" not in p["scopes"]
        variables = {a for a in p["args"] if a.startswith("$")}
        assert variables <= K9S_VARIABLES
    switchover = ps["gardenctl-switchover"]
    assert switchover["confirm"] is True and switchover["dangerous"] is True
    assert switchover["args"][-2:] == ["--", "switchover"]
    assert "--yes" not in switchover["args"], "gardenctl must still show its plan and ask"
    assert ["--bridge-service", "$NAME"] == switchover["args"][5:7]
    assert set(switchover["scopes"]) == {"services", "endpointslices"}
    assert not any(p.get("dangerous") for n, p in ps.items() if n != "gardenctl-switchover")
    assert ps["gardenctl-drills"]["args"][-3:] == ["--", "drill", "list"]
    assert ps["gardenctl-check"]["args"][-1] == "check" and ps["gardenctl-status"]["args"][-1] == "status"
    assert plugins("/opt/gardenctl/bin/gardenctl")["gardenctl-check"]["command"] == "/opt/gardenctl/bin/gardenctl"


# --------------------------------------------------------------------------------------------- merging


USER_FILE = """\
plugins:
  stern:
    shortCut: Ctrl-L
    description: Logs with stern
    scopes: [pods]
    command: stern
    background: false
    args: [--tail, "50", $FILTER, -n, $NAMESPACE]
  gardenctl-retired:
    shortCut: Shift-Q
    description: from an older gardenctl
    scopes: [all]
    command: gardenctl
"""


def test_merge_into_nothing_gives_our_plugins():
    result = merge_plugins(None, plugins())
    assert result.changed and result.added == tuple(plugins()) and result.kept == ()
    assert yaml.safe_load(result.text) == plugins_document()


def test_merge_keeps_user_plugins_drops_retired_ones_and_is_idempotent():
    result = merge_plugins(USER_FILE, plugins())
    data = yaml.safe_load(result.text)
    k9s_validate(data)
    assert list(data["plugins"])[0] == "stern", "the user's plugins keep their place"
    assert data["plugins"]["stern"] == yaml.safe_load(USER_FILE)["plugins"]["stern"]
    assert result.kept == ("stern",) and result.removed == ("gardenctl-retired",)
    assert "gardenctl-retired" not in data["plugins"]
    again = merge_plugins(result.text, plugins())
    assert again.changed is False and again.text == result.text
    assert again.added == again.updated == again.removed == ()


def test_merge_updates_an_edited_gardenctl_entry():
    text = merge_plugins(None, plugins()).text
    edited = yaml.safe_load(text)
    edited["plugins"]["gardenctl-switchover"]["dangerous"] = False
    edited["plugins"]["mine"] = {"shortCut": "Shift-X", "description": "mine", "scopes": ["svc", "services"], "command": "true"}
    result = merge_plugins(yaml.safe_dump(edited), plugins())
    assert result.updated == ("gardenctl-switchover",)
    assert yaml.safe_load(result.text)["plugins"]["gardenctl-switchover"]["dangerous"] is True
    assert result.shortcut_conflicts == ("mine and gardenctl-switchover both use Shift-X",)


def test_merge_keeps_other_top_level_keys_and_empty_files():
    assert merge_plugins("", plugins()).changed
    assert merge_plugins("plugins:\n", plugins()).added == tuple(plugins())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plugins: [a, b]\n", "`plugins` is not a mapping"),
        ("- just\n- a list\n", "not a k9s plugins file"),
        ("plugins: {a: [\n", "not valid YAML"),
        ("plugin:\n  old: {}\n", "old top-level `plugin:` key"),
    ],
)
def test_merge_refuses_files_it_cannot_read(text, message):
    with pytest.raises(PreconditionFailed, match=message.replace("[", r"\[")):
        merge_plugins(text, plugins(), source="plugins.yaml")


def test_default_plugins_path():
    home = Path("/home/op")
    assert default_plugins_path({}, home, "linux") == Path("/home/op/.config/k9s/plugins.yaml")
    assert default_plugins_path({"XDG_CONFIG_HOME": "/x"}, home, "linux") == Path("/x/k9s/plugins.yaml")
    assert default_plugins_path({"K9S_CONFIG_DIR": "/k", "XDG_CONFIG_HOME": "/x"}, home, "linux") == Path("/k/plugins.yaml")
    assert default_plugins_path({}, home, "darwin") == Path("/home/op/Library/Application Support/k9s/plugins.yaml")


# --------------------------------------------------------------------------------------------- config section


def config_with(tmp_path: Path, kubernetes_yaml: str, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"current-context: prod\nclusters:\n  prod:{CLUSTER}{kubernetes_yaml}{extra}")
    return path


def kubeconfig(tmp_path: Path, contexts=("prod-k3s",), current: str | None = None) -> Path:
    path = tmp_path / "kubeconfig"
    data = {"apiVersion": "v1", "kind": "Config", "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts]}
    if current:
        data["current-context"] = current
    path.write_text(yaml.safe_dump(data))
    return path


def test_kubernetes_settings_defaults_types_and_lines(tmp_path):
    cfg = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      context: k\n", tmp_path / "c.yaml")
    s = kubernetes_settings(cfg.clusters["prod"])
    assert (s.context, s.namespace, s.kubeconfig) == ("k", "gardenos", str(Path("~/.kube/config").expanduser()))
    bad = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      context: k\n      kubeconfig: 5\n", tmp_path / "c.yaml")
    with pytest.raises(ConfigError) as info:
        kubernetes_settings(bad.clusters["prod"])
    assert info.value.message == f"{tmp_path / 'c.yaml'}:8: clusters.prod.kubernetes.kubeconfig: expected a string, got a number"
    empty = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      context: ' '\n", tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="context: must not be empty"):
        kubernetes_settings(empty.clusters["prod"])
    none = parse_config(f"clusters:\n  prod:{CLUSTER}", tmp_path / "c.yaml")
    with pytest.raises(ConfigError) as info:
        kubernetes_settings(none.clusters["prod"])
    assert "no kubernetes section" in info.value.message and "kubeconfig:" in info.value.hint
    assert kubernetes_settings(none.clusters["prod"], required=False).configured is False


def test_resolve_context(tmp_path):
    kc = kubeconfig(tmp_path, contexts=("a", "b"), current="b")
    cfg = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      kubeconfig: {kc}\n", tmp_path / "c.yaml")
    settings = kubernetes_settings(cfg.clusters["prod"])
    assert resolve_context(settings) == "b"
    cfg = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      kubeconfig: {kc}\n      context: c\n", tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"has no context 'c' \(it has: a, b\)"):
        resolve_context(kubernetes_settings(cfg.clusters["prod"]))
    kc.write_text("just text")
    with pytest.raises(ConfigError, match="is not a kubeconfig"):
        resolve_context(settings)
    kc.unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_context(settings)


def test_plan_launch_arguments(tmp_path):
    kc = kubeconfig(tmp_path)
    cfg = parse_config(f"clusters:\n  prod:{CLUSTER}    kubernetes:\n      kubeconfig: {kc}\n      context: prod-k3s\n      namespace: ops\n", tmp_path / "c.yaml")
    settings = kubernetes_settings(cfg.clusters["prod"])
    plan = plan_launch("/usr/bin/k9s", settings)
    assert plan.argv == ("/usr/bin/k9s", "--kubeconfig", str(kc), "--context", "prod-k3s", "--namespace", "ops")
    assert plan.env == {"GARDENCTL_CONTEXT": "prod"}
    assert plan_launch("k9s", settings, readonly=True, all_namespaces=True).argv[-2:] == ("--all-namespaces", "--readonly")


def test_cluster_for_kube_context(tmp_path):
    text = (
        "current-context: a\nclusters:\n"
        f"  a:{CLUSTER}    kubernetes:\n      context: ctx-a\n"
        f"  b:{CLUSTER}    kubernetes:\n      context: ctx-b\n"
        f"  c:{CLUSTER}"
    )
    cfg = parse_config(text, tmp_path / "c.yaml")
    assert cluster_for_kube_context(cfg, "ctx-b", None) == "b"
    assert cluster_for_kube_context(cfg, "c", None) == "c"  # bootstrap names the kube context after the cluster
    assert cluster_for_kube_context(cfg, None, "b") == "b"  # no kube context from k9s: --context / GARDENCTL_CONTEXT
    assert cluster_for_kube_context(cfg, None, None) == "a"  # ... else the current context
    # After :ctx to a cluster gardenctl does not know, a shortcut must not fall back to another cluster's database.
    for fallback in ("b", None):
        with pytest.raises(ConfigError, match="kube context 'unknown' belongs to no gardenctl cluster"):
            cluster_for_kube_context(cfg, "unknown", fallback)
    twice = parse_config(text.replace("ctx-b", "ctx-a"), tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="claimed by several gardenctl clusters: a, b"):
        cluster_for_kube_context(twice, "ctx-a", None)


# --------------------------------------------------------------------------------------------- the CLI


def test_cli_plugins_prints_the_document(cli):
    result = cli("k9s", "plugins")
    assert result.exit_code == 0, result
    assert yaml.safe_load(result.stdout) == plugins_document()
    assert result.stderr == ""


def test_cli_plugins_write_merges_backs_up_and_is_idempotent(cli, tmp_path):
    target = tmp_path / "k9s" / "plugins.yaml"
    target.parent.mkdir()
    target.write_text(USER_FILE)
    first = cli("k9s", "plugins", "--write", "--path", str(target))
    assert first.exit_code == 0, first
    assert "added gardenctl-status" in first.stderr and "removed gardenctl-retired" in first.stderr
    data = yaml.safe_load(target.read_text())
    k9s_validate(data)
    assert "stern" in data["plugins"]
    assert (tmp_path / "k9s" / "plugins.yaml.bak").read_text() == USER_FILE
    content = target.read_text()
    second = cli("k9s", "plugins", "--write", "--path", str(target))
    assert second.exit_code == 0 and "already up to date" in second.stderr
    assert target.read_text() == content


def test_cli_plugins_write_default_path_uses_xdg(cli, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    result = cli("k9s", "plugins", "--write", env=env)
    assert result.exit_code == 0, result
    assert yaml.safe_load((tmp_path / "xdg" / "k9s" / "plugins.yaml").read_text()) == plugins_document()


def test_cli_plugins_refuses_a_broken_file_and_path_without_write(cli, tmp_path):
    target = tmp_path / "plugins.yaml"
    target.write_text("plugins: [1, 2]\n")
    result = cli("k9s", "plugins", "--write", "--path", str(target))
    assert result.exit_code == 7 and "`plugins` is not a mapping" in result.stderr
    assert target.read_text() == "plugins: [1, 2]\n"
    assert cli("k9s", "plugins", "--path", str(target)).exit_code == 2


def test_cli_k9s_not_installed_says_how_to_install(cli, tmp_path):
    kc = kubeconfig(tmp_path)
    config = config_with(tmp_path, f"    kubernetes:\n      kubeconfig: {kc}\n      context: prod-k3s\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = cli("k9s", config=config, env={"PATH": str(empty_bin)})
    assert result.exit_code == 7, result
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: k9s is not installed (no `k9s` on PATH)"
    assert lines[1].startswith("hint: install k9s (https://k9scli.io/topics/install/)")
    assert "Traceback" not in result.stderr


def test_cli_k9s_config_errors_come_first(cli, tmp_path):
    config = config_with(tmp_path, "")
    result = cli("k9s", config=config, env={"PATH": str(tmp_path)})
    assert result.exit_code == 4 and "no kubernetes section" in result.stderr and "hint: add to the cluster" in result.stderr
    config = config_with(tmp_path, f"    kubernetes:\n      kubeconfig: {tmp_path / 'missing'}\n")
    result = cli("k9s", config=config, env={"PATH": str(tmp_path)})
    assert result.exit_code == 4 and "does not exist" in result.stderr


def test_cli_k9s_starts_k9s_on_the_configured_context(cli, tmp_path):
    kc = kubeconfig(tmp_path, contexts=("other", "prod-k3s"), current="other")
    config = config_with(tmp_path, f"    kubernetes:\n      kubeconfig: {kc}\n      context: prod-k3s\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "k9s-call.json"
    fake = bin_dir / "k9s"
    fake.write_text(
        "#!/bin/sh\n"
        f"python3 -c 'import json,os,sys; json.dump({{\"argv\": sys.argv[1:], \"ctx\": os.environ.get(\"GARDENCTL_CONTEXT\"), "
        f"\"cfg\": os.environ.get(\"GARDENCTL_CONFIG\")}}, open(\"{record}\", \"w\"))' \"$@\"\n"
        "exit 3\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = cli("k9s", "--readonly", config=config, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert result.exit_code == 3, result  # k9s' own exit code
    call = json.loads(record.read_text())
    assert call["argv"] == ["--kubeconfig", str(kc), "--context", "prod-k3s", "--namespace", "gardenos", "--readonly"]
    assert call["ctx"] == "prod" and call["cfg"] == str(config)


def test_cli_exec_runs_gardenctl_for_the_cluster_k9s_shows(cli, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "current-context: a\nclusters:\n"
        f"  a:{CLUSTER}"
        f"  b:{CLUSTER}    kubernetes:\n      context: kube-b\n"
    )
    result = cli("k9s", "exec", "--kube-context", "kube-b", "--pause", "--", "config", "current-context", config=path)
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "b"
    result = cli("k9s", "exec", "--kube-context", "kube-b", "--bridge-service", "kong", "--", "switchover", config=path)
    assert result.exit_code == 7 and "runs from the bridge services (db-rw, db-ro), not from 'kong'" in result.stderr
    assert cli("k9s", "exec", config=path).exit_code == 2


def test_every_k9s_command_has_help(cli):
    for args in (("k9s",), ("k9s", "plugins"), ("k9s", "exec")):
        result = cli(*args, "--help")
        assert result.exit_code == 0 and len(result.stdout) > 200
    assert "kubeconfig" in cli("k9s", "--help").stdout
