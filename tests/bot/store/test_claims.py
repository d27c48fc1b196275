"""The claim rule shared by deliveries and webhook events: who claims, and when a claim is abandoned."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from bot.store.claims import STALE_CLAIM, abandoned, claimant_dead, instance_id, pid_alive

NOW = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_instance_id_names_this_host_and_process() -> None:
    host, pid, tag = instance_id().split(":")
    assert (host, int(pid), len(tag)) == (socket.gethostname(), os.getpid(), 8)
    assert instance_id() != instance_id()  # two claimants of one process are told apart


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())


def test_a_dead_claimant_is_known_on_this_host_only() -> None:
    pid = dead_pid()
    assert claimant_dead(f"{socket.gethostname()}:{pid}:deadbeef")
    assert not claimant_dead(f"{socket.gethostname()}:{os.getpid()}:cafe0001")
    assert not claimant_dead(f"other-host:{pid}:deadbeef")  # cannot be checked from here
    assert not claimant_dead(None) and not claimant_dead("") and not claimant_dead("garbled")


def test_a_claim_is_abandoned_when_its_claimant_died_or_it_went_stale() -> None:
    live = f"{socket.gethostname()}:{os.getpid()}:cafe0001"
    assert not abandoned(live, NOW - STALE_CLAIM, NOW)
    assert abandoned(live, NOW - STALE_CLAIM - timedelta(seconds=1), NOW)
    assert abandoned(live, None, NOW)
    assert abandoned(f"{socket.gethostname()}:{dead_pid()}:deadbeef", NOW, NOW)
    assert abandoned("other-host:1:feed0001", NOW - timedelta(minutes=2), NOW, stale_after=timedelta(minutes=1))
    assert STALE_CLAIM == timedelta(minutes=15)
