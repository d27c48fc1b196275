"""systemd integration: the notify protocol (bot.service.systemd.Notifier against sockets bound here), `python -m bot
run` under a fake $NOTIFY_SOCKET (READY=1, WATCHDOG=1, STOPPING=1), the unit file (systemd-analyze verify and
security), and the journald log format under $JOURNAL_STREAM."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from bot.service.systemd import Notifier

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "deploy" / "kakao-shopify-bot.service"
INSTALL_BIN = "ExecStart=/opt/kakao-shopify-bot/bin/kakao-shopify-bot "  # the venv of the README's guide
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID")


class NotifyListener:
    """The service manager's end: a datagram socket bound to a path, or to an abstract name ("@…")."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[list[str]] = []  # every datagram, as lines

    def next_with(self, line: str, deadline_s: float = 30.0, proc: subprocess.Popen | None = None) -> list[str]:
        """Read datagrams until one holds `line`; fail at the deadline or when the process has exited."""
        deadline = time.monotonic() + deadline_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {line!r} within {deadline_s} s; received {self.received}")
            self.sock.settimeout(min(0.2, remaining))
            try:
                datagram = self.sock.recv(4096)
            except socket.timeout:
                if proc is not None and proc.poll() is not None:
                    _, err = proc.communicate()
                    raise AssertionError(f"the process exited with {proc.returncode} before {line!r}; "
                                         f"received {self.received}; stderr:\n{err}") from None
                continue
            lines = datagram.decode("utf-8").split("\n")
            self.received.append(lines)
            if line in lines:
                return lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="ksb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def path_listener(short_dir: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(short_dir / "notify"))
    yield listener
    listener.close()


# -- the Notifier ----------------------------------------------------------------------------------------


def test_ready_sends_one_datagram_with_the_status_to_a_path_socket(path_listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path_listener.address})
    assert notifier.enabled
    assert notifier.ready("next: noon 12:00") is True
    assert path_listener.next_with("READY=1", 5) == ["READY=1", "STATUS=next: noon 12:00"]
    assert notifier.status("two\nlines") is True  # one datagram line per field: newlines cannot split it
    assert path_listener.next_with("STATUS=two lines", 5) == ["STATUS=two lines"]
    assert notifier.stopping() is True
    assert path_listener.next_with("STOPPING=1", 5)[0] == "STOPPING=1"


def test_an_abstract_socket_name_starting_with_at_is_used():
    listener = NotifyListener(f"@kakao-shopify-bot-test-{uuid.uuid4().hex}")
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
        assert notifier.watchdog() is True
        assert listener.next_with("WATCHDOG=1", 5) == ["WATCHDOG=1"]
    finally:
        listener.close()


def test_outside_systemd_everything_is_a_no_op(monkeypatch):
    for name in SYSTEMD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for notifier in (Notifier.from_environ(), Notifier.from_environ({})):
        assert not notifier.enabled
        assert notifier.watchdog_interval is None
        assert [notifier.ready("x"), notifier.status("x"), notifier.watchdog(), notifier.stopping()] == [False] * 4
        assert notifier.notify("READY=1") is False


def test_from_environ_reads_the_process_environment_by_default(monkeypatch, path_listener):
    monkeypatch.setenv("NOTIFY_SOCKET", path_listener.address)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier.from_environ()
    assert notifier.watchdog_interval == 1.5
    assert notifier.ready() is True
    assert path_listener.next_with("READY=1", 5) == ["READY=1"]


def test_a_send_that_fails_returns_false_never_raises_and_is_logged_once(short_dir, caplog):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(short_dir / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="bot.service.systemd"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
        assert notifier.ready("x") is False
    warnings = [r for r in caplog.records if r.name == "bot.service.systemd"]
    assert len(warnings) == 1 and "NOTIFY_SOCKET" in warnings[0].getMessage()


@pytest.mark.parametrize("environ, expected", [
    ({"WATCHDOG_USEC": "200000"}, 0.1),
    ({"WATCHDOG_USEC": "60000000"}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # meant for another process
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "nonsense"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": ""}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only(environ, expected):
    assert Notifier.from_environ({"NOTIFY_SOCKET": "/run/systemd/notify", **environ}).watchdog_interval == expected


# -- `python -m bot run` under a fake service manager --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(secret_key: str, **extra: str) -> dict[str, str]:
    skip = ("BOT_DATABASE_URL", "BOT_CONFIG", "CREDENTIALS_DIRECTORY", *SYSTEMD_VARIABLES)
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": "process-rest-key", "PYTHONPATH": str(ROOT)},
               **extra)
    return env


def test_run_tells_systemd_ready_pings_the_watchdog_and_says_stopping_on_sigterm(tmp_path, secret_key,
                                                                               path_listener):
    port = free_port()
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""\
        [database]
        url = "sqlite:///run.sqlite3"

        [server]
        listen = "127.0.0.1:{port}"
        """), encoding="utf-8")
    env = process_env(secret_key, NOTIFY_SOCKET=path_listener.address, WATCHDOG_USEC="200000")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = path_listener.next_with("READY=1", proc=proc)
        # READY=1 means serving: the database is migrated and the port accepts connections.
        assert (tmp_path / "run.sqlite3").exists()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert any(line.startswith("STATUS=next:") for line in ready)  # the next slot (none configured here)
        path_listener.next_with("WATCHDOG=1", proc=proc)  # WatchdogSec=0.2 s: a ping every 0.1 s
        path_listener.next_with("WATCHDOG=1", proc=proc)
        proc.send_signal(signal.SIGTERM)
        path_listener.next_with("STOPPING=1", proc=proc)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert secret_key not in err


# -- the unit file ------------------------------------------------------------------------------------


def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """[Section] → [(key, value)] in order; repeated keys kept (systemd appends them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def test_the_unit_has_what_the_service_relies_on():
    sections = unit_sections(UNIT.read_text(encoding="utf-8"))
    unit, service = sections["Unit"], sections["Service"]
    one = {key: values(service, key)[-1] for key, _ in service}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["ExecStart"] == INSTALL_BIN.partition("=")[2] + "run"
    assert one["WatchdogSec"] and one["TimeoutStopSec"] and one["Restart"] == "on-failure"
    # systemd reads the start limits in [Unit] only; in [Service] they would be ignored.
    assert values(unit, "StartLimitIntervalSec") and values(unit, "StartLimitBurst")
    assert not values(service, "StartLimitIntervalSec") and not values(service, "StartLimitBurst")
    assert one["RestartPreventExitStatus"] == "2"  # bad config: a restart cannot help
    assert one["DynamicUser"] == "yes" and one["StateDirectory"] == "kakao-shopify-bot"
    assert one["User"] == "kakao-shopify-bot"  # named: the timer units share the dynamic user
    assert "BOT_DATABASE_URL=sqlite:////var/lib/kakao-shopify-bot/bot.sqlite3" in values(service, "Environment")
    assert "BOT_CONFIG=/etc/kakao-shopify-bot/config.toml" in values(service, "Environment")
    assert one["EnvironmentFile"] == "-/etc/kakao-shopify-bot/kakao-shopify-bot.env"
    assert one["ProtectSystem"] == "strict" and one["NoNewPrivileges"] == "yes" and one["PrivateTmp"] == "yes"
    assert "AF_UNIX" in one["RestrictAddressFamilies"].split()  # the notify socket
    # Secrets as credentials, named as bot.config.secrets reads them from $CREDENTIALS_DIRECTORY (lower case).
    secrets = ["BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "KAKAO_CLIENT_SECRET", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET",
               "BOT_HEALTH_TOKEN"]
    assert sorted(values(service, "LoadCredential")) == sorted(name.lower() for name in secrets)


def test_the_environment_file_example_holds_no_secret():
    example = (ROOT / "deploy" / "kakao-shopify-bot.env.example").read_text(encoding="utf-8")
    assigned = {line.partition("=")[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert assigned == {"BOT_CONFIG"}
    assert not re.search(r"(?i)^#?\s*(BOT_SECRET_KEY|KAKAO_|SHOPIFY_)", example, re.M)


@pytest.fixture
def systemd_analyze() -> str:
    """systemd-analyze; CI installs Debian's systemd (.ci/run), so there this test never skips."""
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must verify the unit: install systemd (apt-get install systemd); .ci/run does")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return found


@pytest.fixture
def local_units(tmp_path: Path) -> list[Path]:
    """deploy/'s units with ExecStart pointing at this interpreter: `verify` checks that the binary exists,
    and the units name the venv of the installation guide (/opt/kakao-shopify-bot), absent here."""
    copies = []
    for unit in sorted([*UNIT.parent.glob("*.service"), *UNIT.parent.glob("*.timer")]):
        text = unit.read_text(encoding="utf-8")
        if unit.suffix == ".service":
            assert text.count(INSTALL_BIN) == 1, unit
        copy = tmp_path / unit.name
        copy.write_text(text.replace(INSTALL_BIN, f"ExecStart={sys.executable} -m bot "), encoding="utf-8")
        copies.append(copy)
    assert {copy.name for copy in copies} >= {UNIT.name, "kakao-shopify-bot-noon.service",
                                              "kakao-shopify-bot-noon.timer"}
    return copies


def test_systemd_analyze_verify_accepts_the_units(systemd_analyze, local_units):
    result = subprocess.run([systemd_analyze, "verify", *map(str, local_units)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    # Warnings (unknown keys, bad values) come with exit 0: none may name our units.
    assert "kakao-shopify-bot" not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize("name", [UNIT.name, "kakao-shopify-bot-noon.service"])
def test_systemd_analyze_security_rates_the_services_ok(systemd_analyze, local_units, name):
    (unit,) = [path for path in local_units if path.name == name]
    result = subprocess.run([systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout  # README states the measured score (1.1)


def test_the_noon_timer_runs_send_now_for_its_slot_as_the_same_user_on_the_same_database():
    main = unit_sections(UNIT.read_text(encoding="utf-8"))["Service"]
    noon = unit_sections((UNIT.parent / "kakao-shopify-bot-noon.service").read_text(encoding="utf-8"))["Service"]
    timer = unit_sections((UNIT.parent / "kakao-shopify-bot-noon.timer").read_text(encoding="utf-8"))
    assert values(noon, "ExecStart") == [INSTALL_BIN.partition("=")[2] + "send-now --slot noon"]
    assert values(noon, "Type") == ["oneshot"]
    assert values(timer["Timer"], "OnCalendar") == ["*-*-* 12:00:00 Asia/Seoul"]
    assert not values(timer["Timer"], "Persistent")  # a catch-up at boot could send the next day's noon early
    for key in ("User", "DynamicUser", "StateDirectory", "Environment", "EnvironmentFile", "LoadCredential",
                "RestrictAddressFamilies", "SystemCallFilter", "ProtectSystem"):
        assert values(noon, key) == values(main, key), key


# -- logs under journald ------------------------------------------------------------------------------


LOG_SCRIPT = """
import logging
from bot.util.logs import setup_logging
setup_logging()
log = logging.getLogger("bot.example")
log.info("hello")
log.warning("careful")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("boom")
"""
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def log_output(journal_stream: str | None) -> str:
    """Run LOG_SCRIPT with stderr on a pipe; journal_stream "pipe" = the pipe's own dev:inode."""
    read_end, write_end = os.pipe()
    stat = os.fstat(write_end)
    env = process_env("unused")
    if journal_stream == "pipe":
        env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
    elif journal_stream:
        env["JOURNAL_STREAM"] = journal_stream
    try:
        proc = subprocess.Popen([sys.executable, "-c", LOG_SCRIPT], cwd=ROOT, env=env, stderr=write_end)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as stream:
        out = stream.read()
    assert proc.wait(60) == 0, out
    return out


def test_under_journald_every_line_has_a_level_prefix_and_no_timestamp():
    lines = log_output("pipe").splitlines()
    assert lines[:2] == ["<6>bot.example: hello", "<4>bot.example: careful"]
    assert lines[2] == "<3>bot.example: boom"
    traceback = lines[3:]
    assert traceback and all(line.startswith("<3>") for line in traceback)  # one journal entry per line
    assert "ZeroDivisionError" in traceback[-1]
    assert not any(TIMESTAMP.search(line) for line in lines)


@pytest.mark.parametrize("journal_stream", [None, "0:0", "not-a-stream"])
def test_elsewhere_lines_have_timestamps_and_level_names(journal_stream):
    # "0:0": $JOURNAL_STREAM inherited, but stderr is another stream (a shell started from a service).
    out = log_output(journal_stream)
    first = out.splitlines()[0]
    assert TIMESTAMP.match(first) and first.endswith("INFO bot.example: hello")
    assert "<6>" not in out and "<3>" not in out
