"""The job queue: one worker thread runs the studio's long (GPU) operations one at a time.

A job is a function ``fn(progress, cancel) -> result`` (the pipelines' Progress callback and a
CancelToken). Jobs run in submission order on a single worker thread, so two GPU jobs never
compete for the device, while the browser stays responsive. Each job has a status

    pending -> running -> done | failed | cancelled        (pending -> cancelled directly)

a progress (fraction in [0, 1], message), and on failure an error message that says why. An
optional ``on_done(result)`` writes the result back (e.g. registers a new run) on the worker
thread; if it raises, the job fails with that reason. Listeners receive a frozen
:class:`JobState` on every change (progress changes at most every ``progress_interval_s``), so
every connected browser tab shows the same state.

A burst of clicks cannot flood the queue: a job submitted with a ``key`` equal to a pending
job's is that job (no second one is queued), at most ``max_pending`` jobs wait, and
:meth:`JobQueue.cancel_pending` empties the queue in one call.

Examples:
    >>> q = JobQueue()
    >>> job = q.submit("square", lambda progress, cancel: 7 * 7)
    >>> q.wait(job.id).status, q.wait(job.id).result
    ('done', 49)
    >>> q.shutdown()
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pipelines.progress import Cancelled, CancelToken, Progress

log = logging.getLogger(__name__)

JobStatus = Literal["pending", "running", "done", "failed", "cancelled"]
MAX_PENDING = 32  # jobs waiting at once
JobFn = Callable[[Progress, CancelToken], Any]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class JobState:
    """A snapshot of one job. Times are ``time.time()`` seconds; None until reached."""

    id: int
    title: str
    kind: str
    status: JobStatus
    fraction: float = 0.0
    message: str = ""
    error: str | None = None  # why it failed: "<ExceptionType>: <message>"
    result: Any = None
    cancel_requested: bool = False
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def active(self) -> bool:
        return self.status in ("pending", "running")

    @property
    def elapsed_s(self) -> float | None:
        """Seconds running so far (or in total once finished); None while pending."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class _Entry:
    state: JobState
    fn: JobFn
    token: CancelToken
    on_done: Callable[[Any], None] | None
    key: object = None  # identical pending submissions share one job
    last_notified: float = float("-inf")
    announced: threading.Event = field(default_factory=threading.Event)  # final state told to listeners


Listener = Callable[[JobState], None]


class JobQueue:
    """FIFO queue with one worker thread (started on the first submit).

    ``progress_interval_s``: listeners hear progress-only changes at most this often (status
    changes always); ``keep_finished``: how many finished jobs :meth:`jobs` still lists;
    ``max_pending``: how many jobs may wait at once.
    """

    def __init__(
        self, *, progress_interval_s: float = 0.1, keep_finished: int = 50, max_pending: int = MAX_PENDING
    ) -> None:
        self.max_pending = max_pending
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._pending: collections.deque[_Entry] = collections.deque()
        self._running: _Entry | None = None
        self._finished: collections.deque[_Entry] = collections.deque(maxlen=keep_finished)
        self._by_id: dict[int, _Entry] = {}
        self._listeners: list[Listener] = []
        self._notify_lock = threading.RLock()
        self._interval = progress_interval_s
        self._worker: threading.Thread | None = None
        self._closed = False

    # ---------------------------------------------------------------- submit
    def submit(
        self,
        title: str,
        fn: JobFn,
        *,
        kind: str = "",
        on_done: Callable[[Any], None] | None = None,
        key: object = None,
    ) -> JobState:
        """Queue ``fn(progress, cancel)``; returns the pending job's state. With a ``key``
        (hashable, naming what the job computes), a pending job with an equal key is returned
        instead of queueing another. ValueError when ``max_pending`` jobs wait already."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            if key is not None:
                twin = next((e for e in self._pending if e.key == key), None)
                if twin is not None:
                    return twin.state
            if len(self._pending) >= self.max_pending:
                raise ValueError(
                    f"{len(self._pending)} jobs are waiting already; let them run or cancel them "
                    "(Jobs: Cancel all pending)"
                )
            entry = _Entry(
                JobState(
                    id=next(self._ids), title=title, kind=kind, status="pending", submitted_at=time.time()
                ),
                fn,
                CancelToken(),
                on_done,
                key,
            )
            self._pending.append(entry)
            self._by_id[entry.state.id] = entry
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="lrm-studio-jobs", daemon=True)
                self._worker.start()
            self._lock.notify_all()
            state = entry.state
        self._notify(entry)
        return state

    def cancel(self, job_id: int) -> bool:
        """Cancel a pending job (it never runs) or ask a running one to stop (it stops at its
        next cancel check and ends as "cancelled"). False if the job is unknown or finished."""
        with self._lock:
            entry = self._by_id.get(job_id)
            if entry is None or entry.state.finished:
                return False
            entry.token.cancel()
            finished_now = entry.state.status == "pending"
            if finished_now:
                self._pending.remove(entry)
                self._finish(entry, status="cancelled", message="cancelled before it started")
            else:
                entry.state = replace(entry.state, cancel_requested=True, message="cancelling...")
            self._lock.notify_all()
        self._notify(entry)
        if finished_now:
            entry.announced.set()
        return True

    def cancel_all(self) -> None:
        for state in self.active():
            self.cancel(state.id)

    def cancel_pending(self) -> int:
        """Cancel every job that has not started (the running one goes on); returns how many."""
        with self._lock:
            ids = [e.state.id for e in self._pending]
        return sum(self.cancel(i) for i in ids)

    # ----------------------------------------------------------------- query
    def get(self, job_id: int) -> JobState:
        with self._lock:
            if job_id not in self._by_id:
                raise KeyError(f"no job {job_id}")
            return self._by_id[job_id].state

    def active(self) -> list[JobState]:
        """The running job (first) and the pending ones in the order they will run."""
        with self._lock:
            running = [self._running.state] if self._running is not None else []
            return running + [e.state for e in self._pending]

    def jobs(self) -> list[JobState]:
        """Finished jobs (oldest first, the last ``keep_finished``), then the active ones."""
        with self._lock:
            finished = [e.state for e in self._finished]
        return finished + self.active()

    def wait(self, job_id: int, timeout: float | None = None) -> JobState:
        """Block until the job finished and every listener heard its final state; raises
        TimeoutError after ``timeout`` seconds."""
        with self._lock:
            if job_id not in self._by_id:
                raise KeyError(f"no job {job_id}")
            entry = self._by_id[job_id]
        if not entry.announced.wait(timeout):
            raise TimeoutError(f"job {job_id} still {entry.state.status} after {timeout} s")
        return entry.state

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until no job is pending or running and listeners heard every final state;
        TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                entries = [*self._finished, *([self._running] if self._running else []), *self._pending]
            waiting = [e for e in entries if not e.announced.is_set()]
            if not waiting:
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not waiting[0].announced.wait(left):
                raise TimeoutError(f"jobs still active after {timeout} s")

    # ------------------------------------------------------------- listeners
    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(state)`` on every change (from the worker or the cancelling thread);
        returns a function that removes the listener."""
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return remove

    def _notify(self, entry: _Entry) -> None:
        # One notification at a time, each reading the job's state as it is now: a listener
        # can never see an older state after a newer one (e.g. "running" after "cancelled").
        with self._notify_lock:
            with self._lock:
                listeners = list(self._listeners)
                state = entry.state
            for fn in listeners:
                try:
                    fn(state)
                except Exception:  # a broken listener must not stop the queue
                    log.exception("job listener %r failed", fn)

    # ----------------------------------------------------------------- close
    def shutdown(self, *, cancel: bool = True, timeout: float | None = 10.0) -> None:
        """Stop taking jobs; cancel the queue (unless ``cancel=False``: let it drain), then
        wait up to ``timeout`` s for the worker."""
        with self._lock:
            self._closed = True
            worker = self._worker
        if cancel:
            self.cancel_all()
        with self._lock:
            self._lock.notify_all()
        if worker is not None:
            worker.join(timeout)

    # ---------------------------------------------------------------- worker
    def _finish(self, entry: _Entry, *, status: JobStatus, **fields: Any) -> None:
        """Mark finished (lock held)."""
        entry.state = replace(entry.state, status=status, finished_at=time.time(), **fields)
        self._finished.append(entry)
        # Jobs that fell off the history are forgotten, results included.
        keep = {e.state.id for e in self._finished} | {e.state.id for e in self._pending}
        if self._running is not None:
            keep.add(self._running.state.id)
        for job_id in [i for i in self._by_id if i not in keep]:
            del self._by_id[job_id]

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if not self._pending:
                    return  # closed and drained
                entry = self._pending.popleft()
                entry.state = replace(entry.state, status="running", started_at=time.time())
                self._running = entry
            self._notify(entry)
            self._run(entry)

    def _run(self, entry: _Entry) -> None:
        def progress(fraction: float, message: str) -> None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            with self._lock:
                entry.state = replace(
                    entry.state,
                    fraction=fraction,
                    message="cancelling..." if entry.state.cancel_requested else message,
                )
                now = time.monotonic()
                due = now - entry.last_notified >= self._interval
                if due:
                    entry.last_notified = now
            if due:
                self._notify(entry)

        outcome: dict[str, Any]
        try:
            result = entry.fn(progress, entry.token)
            if entry.on_done is not None:
                try:
                    entry.on_done(result)
                except Exception as e:
                    raise _WriteBackError(e) from e
            outcome = {"status": "done", "result": result, "fraction": 1.0, "message": "done"}
        except Cancelled:
            outcome = {"status": "cancelled", "message": "cancelled"}
        except _WriteBackError as e:
            log.error("job %r: saving its result failed", entry.state.title, exc_info=e.__cause__)
            outcome = {"status": "failed", "error": f"saving the result failed: {_describe(e.__cause__)}"}
        except Exception as e:
            log.error("job %r failed", entry.state.title, exc_info=e)
            outcome = {"status": "failed", "error": _describe(e)}
        except BaseException as e:  # KeyboardInterrupt / SystemExit: record, then let it through
            with self._lock:
                self._running = None
                self._finish(entry, status="failed", error=_describe(e))
                self._lock.notify_all()
            self._notify(entry)
            entry.announced.set()
            raise
        with self._lock:
            self._running = None
            self._finish(entry, **outcome)
            self._lock.notify_all()
        self._notify(entry)
        entry.announced.set()


class _WriteBackError(Exception):
    """on_done raised (wraps the cause)."""


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "unknown error"
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
