"""Group commit: concurrent short writes of one kind share one transaction, and so one wait for the disk.

On SQLite a commit is on disk before it returns (synchronous=FULL: about a millisecond on an ordinary
disk) and writers take turns, so one transaction per webhook caps the route near a thousand answers a
second whatever else is fast. Here each caller queues its parameters; a caller that finds nobody
committing leads: it runs every write queued by then in one transaction, hands each caller its own
result and wakes them, and passes the lead to the first caller queued meanwhile. Nothing waits for
a timer: a lone caller is committed alone, immediately. Each caller still returns only after its
write is committed.

If the shared transaction fails, each of its writes is run again in a transaction of its own, so a
write that fails fails only its own caller. A leader stopped mid-commit, or a waiting caller interrupted
(even just as the lead was handed to it), still hands the lead on: nobody waits for a leader that is gone.

    inserts = GroupCommit(db.run_write, lambda connection, values: connection.execute(statement, values).scalar())
    row_id = inserts(values)
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")
RunWrite = Callable[[Callable[[Connection], Any]], Any]  # Database.run_write


class _Pending:
    __slots__ = ("params", "result", "error", "leads", "woken")

    def __init__(self, params: Any):
        self.params = params
        self.result: Any = None
        self.error: BaseException | None = _NOT_RUN
        self.leads = False  # this caller commits the queue (it found no leader, or was handed the role)
        self.woken: threading.Event | None = None  # set when its write is done, or when it is to lead


class GroupCommitInterrupted(RuntimeError):
    """The leader stopped (an exception that is not an Exception) before this write was committed."""


_NOT_RUN = GroupCommitInterrupted("the grouped write was not run")


class GroupCommit(Generic[T]):
    """`group(params)` → `write(connection, params)`'s result, committed, sharing the transaction with
    the calls made at the same time.

    One caller at a time leads: it takes every write queued so far, commits them, wakes each of their
    callers through its own Event and hands the lead to the first caller queued meanwhile. The callers
    of a batch wake together; none waits on a lock the others pass along one by one (a convoy in which
    each hand-over waited for the interpreter lock: request threads spent 59% of their time there).
    """

    def __init__(self, run_write: RunWrite, write: Callable[[Connection, Any], T]):
        self._run_write = run_write
        self._write = write
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()
        self._leading = False

    def __call__(self, params: Any) -> T:
        mine = _Pending(params)
        with self._lock:
            self._queue.append(mine)
            if self._leading:
                mine.woken = threading.Event()
            else:
                self._leading = mine.leads = True
        if not mine.leads:
            try:
                mine.woken.wait()  # type: ignore[union-attr] - set for every caller that found a leader
            except BaseException:
                self._abandon(mine)
                raise
        if mine.leads:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            # Even when interrupted: the batch's callers are woken (GroupCommitInterrupted if their write
            # was not committed) and the next caller queued leads, so nobody waits for a leader that is gone.
            with self._lock:
                successor = self._hand_lead_on()
            for item in batch:
                if item.woken is not None:
                    item.woken.set()
            if successor is not None:
                successor.woken.set()  # type: ignore[union-attr] - it queued while this caller led

    def _abandon(self, mine: _Pending) -> None:
        """A waiting caller interrupted (a signal's KeyboardInterrupt): its write is dropped if no leader took
        it yet (its caller gets the exception, not a result), and a lead handed to it meanwhile passes on to
        the next caller queued, so the queue never waits for a leader that is gone."""
        with self._lock:
            self._queue = [item for item in self._queue if item is not mine]
            if not mine.leads:
                return
            successor = self._hand_lead_on()
        if successor is not None:
            successor.woken.set()  # type: ignore[union-attr] - it queued while a leader committed

    def _hand_lead_on(self) -> _Pending | None:
        """With the lock held: the lead passes to the first caller queued (returned, to be woken), or nobody leads."""
        successor = self._queue[0] if self._queue else None
        if successor is not None:
            successor.leads = True
        else:
            self._leading = False
        return successor

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = self._run_write(lambda connection: [self._write(connection, item.params) for item in batch])
        except Exception as exc:  # noqa: BLE001 - handed to its caller, or each write retried alone
            if len(batch) == 1:
                batch[0].error = exc
                return
            for item in batch:
                self._alone(item)
            return
        for item, result in zip(batch, results):
            item.result, item.error = result, None

    def _alone(self, item: _Pending) -> None:
        try:
            item.result = self._run_write(lambda connection: self._write(connection, item.params))
            item.error = None
        except Exception as exc:  # noqa: BLE001 - this caller's own failure
            item.error = exc
