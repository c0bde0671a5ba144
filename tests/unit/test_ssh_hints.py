"""What gardenctl tells the operator when ``sudo -n`` itself is what failed on a host."""

from gardenctl.backends.ssh import SshTarget, _sudo_hint, shell_command


def target() -> SshTarget:
    return SshTarget(host="10.0.0.5", user="admin", name="pg1")


def test_sudo_not_installed_says_install_it_or_log_in_as_root():
    remote = shell_command(["systemctl", "stop", "patroni"], sudo=True)
    hint = _sudo_hint(remote, 127, "bash: line 1: sudo: command not found\n", target())
    assert hint == "sudo is not installed on 10.0.0.5: install it (apt-get install sudo) or log in as root and set sudo: false"


def test_sudo_wanting_a_password_says_give_nopasswd():
    remote = shell_command(["systemctl", "stop", "patroni"], sudo=True)
    hint = _sudo_hint(remote, 1, "sudo: a password is required\n", target())
    assert hint is not None and "passwordless sudo" in hint and "admin" in hint


def test_no_hint_when_the_command_itself_failed():
    remote = shell_command(["systemctl", "stop", "patroni"], sudo=True)
    assert _sudo_hint(remote, 5, "Failed to stop patroni.service: Unit patroni.service not loaded.\n", target()) is None


def test_no_hint_without_sudo():
    remote = shell_command(["frobnicate"])
    assert _sudo_hint(remote, 127, "bash: line 1: frobnicate: command not found\n", target()) is None
