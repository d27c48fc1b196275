"""Group commit: callers that wait for the same turn share one transaction; each gets its own result,
and a write that fails fails only its own caller."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from bot.app import App
from bot.store import group_commit
from bot.store.group_commit import GroupCommit, GroupCommitInterrupted
from bot.webhooks.inbox import store_event

from webhook_helpers import events, wait_for


class Transactions:
    """A stand-in for Database.run_write: records the writes of each transaction."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def run_write(self, work: Callable[[Any], Any]) -> Any:
        writes: list[Any] = []
        result = work(writes)
        self.batches.append(writes)
        return result


class Callers:
    """Calls a GroupCommit from threads of their own, keeping what each call returned or raised."""

    def __init__(self, group: GroupCommit) -> None:
        self.group = group
        self.results: dict[str, Any] = {}
        self.threads: list[threading.Thread] = []

    def start(self, params: str) -> None:
        thread = threading.Thread(target=self._call, args=(params,))
        self.threads.append(thread)
        thread.start()

    def _call(self, params: str) -> None:
        try:
            self.results[params] = self.group(params)
        except BaseException as exc:  # noqa: BLE001 - what each caller got is the point
            self.results[params] = exc

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


def recorded(writes: list, params: str) -> str:
    """The write of these tests: noted in its transaction, its result the params in capitals."""
    writes.append(params)
    return params.upper()


def first_caller_held(write: Callable[[list, str], str]) -> tuple[Transactions, GroupCommit, Callers, threading.Event]:
    """A group committing `write`, with a caller "first" started and held inside its commit until the
    returned Event is set: whoever calls meanwhile queues behind it."""
    transactions = Transactions()
    inside, release = threading.Event(), threading.Event()

    def held(writes: list, params: str) -> str:
        if params == "first":
            inside.set()
            assert release.wait(10)
        return write(writes, params)

    group = GroupCommit(transactions.run_write, held)
    callers = Callers(group)
    callers.start("first")
    assert inside.wait(10)
    return transactions, group, callers, release


def test_callers_queued_behind_a_commit_share_the_next_one() -> None:
    def write(writes: list, params: str) -> str:
        if params == "bad":
            raise ValueError("refused")
        return recorded(writes, params)

    transactions, group, callers, release = first_caller_held(write)
    for name in ("b", "bad", "d"):
        callers.start(name)
    wait_for(lambda: len(group._queue) == 3)  # noqa: SLF001 - all three queued behind the first commit
    release.set()
    callers.join()
    results = callers.results

    assert {name: value for name, value in results.items() if name != "bad"} == {"first": "FIRST", "b": "B", "d": "D"}
    assert isinstance(results["bad"], ValueError)
    # One transaction for the first; the three queued shared one, which failed on "bad": each then alone.
    assert transactions.batches[0] == ["first"]
    assert sorted(transactions.batches[1:], key=str) == [["b"], ["d"]]


def test_a_leader_stopped_mid_commit_wakes_its_batch_and_hands_the_lead_on() -> None:
    # A leader stopped by an exception that is not an Exception (SystemExit) must not strand anyone: the
    # callers of its batch learn their write was not committed, and the next caller queued commits the rest.
    stopping, later_queued = threading.Event(), threading.Event()

    def write(writes: list, params: str) -> str:
        if params == "stop":
            stopping.set()
            assert later_queued.wait(10)
            raise SystemExit("stopping")
        return recorded(writes, params)

    transactions, group, callers, release = first_caller_held(write)
    callers.start("stop")
    wait_for(lambda: len(group._queue) == 1)  # noqa: SLF001 - "stop" leads the next batch
    callers.start("same-batch")
    wait_for(lambda: len(group._queue) == 2)  # noqa: SLF001
    release.set()
    assert stopping.wait(10)  # "stop" leads ["stop", "same-batch"]; "later" queues behind it, then it dies
    callers.start("later")
    wait_for(lambda: len(group._queue) == 1)  # noqa: SLF001
    later_queued.set()
    callers.join()
    results = callers.results

    assert results["first"] == "FIRST" and results["later"] == "LATER"
    assert isinstance(results["stop"], SystemExit)
    assert isinstance(results["same-batch"], GroupCommitInterrupted)
    assert ["later"] in transactions.batches and not any("same-batch" in batch for batch in transactions.batches)


class _WokenThenInterrupted(threading.Event):
    """An Event whose waiter is interrupted (KeyboardInterrupt, as a signal does) just as it wakes."""

    def wait(self, timeout: float | None = None) -> bool:
        super().wait(timeout)
        raise KeyboardInterrupt


def test_a_caller_interrupted_as_it_is_handed_the_lead_passes_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # "handed" queues first behind the held commit, so the lead is handed to it; it is interrupted as it
    # wakes. Its write is dropped (its caller got the exception), and "later", queued behind it, still leads.
    transactions, group, callers, release = first_caller_held(recorded)
    with monkeypatch.context() as patched:
        # The module's own name for threading: the test's threads and waits keep the real Event.
        patched.setattr(group_commit, "threading", SimpleNamespace(Event=_WokenThenInterrupted))
        callers.start("handed")
        wait_for(lambda: len(group._queue) == 1)  # noqa: SLF001 - queued, with its interrupting Event
    callers.start("later")
    wait_for(lambda: len(group._queue) == 2)  # noqa: SLF001
    release.set()
    callers.join()  # without the hand-over "later" would wait for a leader forever
    results = callers.results

    assert results["first"] == "FIRST" and results["later"] == "LATER"
    assert isinstance(results["handed"], KeyboardInterrupt)
    assert transactions.batches == [["first"], ["later"]]
    assert group("after") == "AFTER"  # and the group still works


def test_a_lone_caller_is_committed_at_once() -> None:
    transactions = Transactions()
    group = GroupCommit(transactions.run_write, lambda writes, params: writes.append(params) or params)
    assert [group(1), group(2)] == [1, 2]
    assert transactions.batches == [[1], [2]]


def test_concurrent_deliveries_are_each_stored_once(bot: App) -> None:
    threads = 8
    start = threading.Barrier(threads)
    answers: list[bool] = []
    lock = threading.Lock()

    def send(number: int) -> None:
        start.wait(10)
        for i in range(20):
            # Every delivery twice, from two threads: one is stored, the other is a duplicate.
            stored = store_event(bot, app="default", shop="my-store.myshopify.com", topic="orders/updated",
                                 webhook_id=f"w{(number // 2)}-{i}", body="{}")
            with lock:
                answers.append(stored)

    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert answers.count(True) == threads // 2 * 20 and answers.count(False) == threads // 2 * 20
    assert len({stored.webhook_id for stored in events(bot)}) == len(events(bot)) == threads // 2 * 20
