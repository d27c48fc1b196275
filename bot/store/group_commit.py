"""Group commit: concurrent short writes of one kind share one transaction, and so one wait for the disk.

On SQLite a commit is on disk before it returns (synchronous=FULL: about a millisecond on an ordinary
disk) and writers take turns, so one transaction per webhook caps the route near a thousand answers a
second whatever else is fast. Here each caller queues its parameters and waits for its turn; the
first to get it (the leader) runs every write queued by then in one transaction and hands each
caller its own result; the others find theirs done when their turn comes and return at once.
Nothing waits for a timer: a lone caller is committed alone, immediately. Each caller still returns
only after its write is committed.

If the shared transaction fails, each of its writes is run again in a transaction of its own, so a
write that fails fails only its own caller.

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
    __slots__ = ("params", "result", "error")

    def __init__(self, params: Any):
        self.params = params
        self.result: Any = None
        self.error: BaseException | None = _NOT_RUN


class GroupCommitInterrupted(RuntimeError):
    """The leader stopped (an exception that is not an Exception) before this write was committed."""


_NOT_RUN = GroupCommitInterrupted("the grouped write was not run")


class GroupCommit(Generic[T]):
    """`group(params)` → `write(connection, params)`'s result, committed, sharing the transaction with
    the calls made at the same time."""

    def __init__(self, run_write: RunWrite, write: Callable[[Connection, Any], T]):
        self._run_write = run_write
        self._write = write
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()

    def __call__(self, params: Any) -> T:
        mine = _Pending(params)
        with self._queue_lock:
            self._queue.append(mine)
        with self._turn:
            # A leader that took the queue after our append committed (or failed) our write before it
            # let go of the turn; otherwise ours is still queued and we lead.
            if mine.error is _NOT_RUN:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                if batch:
                    self._commit(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result

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
