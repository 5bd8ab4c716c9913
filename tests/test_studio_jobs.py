"""The studio's job queue: order, one job at a time, cancel (pending and running), failures
that say why, write-back, listeners that end on the final state."""

from __future__ import annotations

import random
import threading
import time

import pytest

from pipelines.progress import CancelToken
from studio.jobs import JobQueue, JobState

TIMEOUT = 10.0


class Recorder:
    """A listener keeping every state it was given, per job."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: list[JobState] = []

    def __call__(self, state: JobState) -> None:
        with self.lock:
            self.states.append(state)

    def of(self, job_id: int) -> list[JobState]:
        with self.lock:
            return [s for s in self.states if s.id == job_id]


@pytest.fixture
def queue():
    q = JobQueue(progress_interval_s=0.0)
    yield q
    q.shutdown(timeout=TIMEOUT)


def blocker(started: threading.Event, release: threading.Event):
    def fn(progress, cancel):
        started.set()
        assert release.wait(TIMEOUT), "test never released the blocking job"
        return "blocker"

    return fn


def test_jobs_run_in_submission_order_one_at_a_time(queue, seed):
    rng = random.Random(seed)
    n = rng.randint(4, 9)
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []
    running = [0]
    peak = [0]
    lock = threading.Lock()

    def job(i):
        def fn(progress, cancel):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(rng.uniform(0, 0.01))
            with lock:
                ran.append(i)
                running[0] -= 1
            return i * i

        return fn

    first = queue.submit("block", blocker(started, release))
    assert started.wait(TIMEOUT)
    jobs = [queue.submit(f"job {i}", job(i), kind="test") for i in range(n)]
    active = queue.active()
    assert [s.id for s in active] == [first.id] + [j.id for j in jobs]
    assert active[0].status == "running" and all(s.status == "pending" for s in active[1:])
    release.set()
    finals = [queue.wait(j.id, TIMEOUT) for j in jobs]
    assert ran == list(range(n))
    assert peak[0] == 1
    assert [f.result for f in finals] == [i * i for i in range(n)]
    assert all(f.status == "done" and f.fraction == 1.0 and f.error is None for f in finals)
    assert all(f.started_at is not None and f.finished_at >= f.started_at for f in finals)
    assert queue.active() == []


def test_cancel_pending_job_never_runs(queue):
    rec = Recorder()
    queue.add_listener(rec)
    started, release = threading.Event(), threading.Event()
    ran = threading.Event()
    first = queue.submit("block", blocker(started, release))
    assert started.wait(TIMEOUT)
    victim = queue.submit("victim", lambda p, c: ran.set())
    after = queue.submit("after", lambda p, c: "after")
    assert queue.cancel(victim.id) is True
    assert queue.get(victim.id).status == "cancelled"
    assert [s.id for s in queue.active()] == [first.id, after.id]
    release.set()
    assert queue.wait(after.id, TIMEOUT).status == "done"
    assert not ran.is_set()
    assert [s.status for s in rec.of(victim.id)] == ["pending", "cancelled"]
    assert queue.cancel(victim.id) is False  # already finished
    assert queue.cancel(first.id) is False  # finished too


def test_cancel_running_job_stops_it_and_the_queue_goes_on(queue):
    rec = Recorder()
    queue.add_listener(rec)
    in_loop = threading.Event()
    steps = [0]

    def long_job(progress, cancel: CancelToken):
        for step in range(100_000):
            cancel.check()
            steps[0] = step
            progress(step / 100_000, f"step {step}")
            in_loop.set()
            time.sleep(0.001)
        return "finished"  # not reached when cancelled

    job = queue.submit("train", long_job)
    nxt = queue.submit("next", lambda p, c: "next ran")
    assert in_loop.wait(TIMEOUT)
    assert queue.cancel(job.id) is True
    final = queue.wait(job.id, TIMEOUT)
    assert final.status == "cancelled" and final.result is None and final.error is None
    assert final.cancel_requested
    assert steps[0] < 99_999
    assert queue.wait(nxt.id, TIMEOUT).result == "next ran"
    seen = rec.of(job.id)
    assert seen[-1].status == "cancelled"  # listeners end on the final state
    assert any(s.cancel_requested and s.status == "running" for s in seen)


def test_failure_reports_why_and_keeps_queue_alive(queue, seed):
    rng = random.Random(seed)
    n = rng.randint(3, 7)
    bad = set(rng.sample(range(n), rng.randint(1, n - 1)))
    rec = Recorder()
    queue.add_listener(rec)

    def job(i):
        def fn(progress, cancel):
            progress(0.5, "half way")
            if i in bad:
                raise RuntimeError(f"SfM registered 2 of {10 + i} frames; use more overlap")
            return i

        return fn

    jobs = [queue.submit(f"job {i}", job(i)) for i in range(n)]
    finals = [queue.wait(j.id, TIMEOUT) for j in jobs]
    for i, f in enumerate(finals):
        if i in bad:
            assert f.status == "failed"
            assert f.error == f"RuntimeError: SfM registered 2 of {10 + i} frames; use more overlap"
            assert f.result is None
            assert rec.of(f.id)[-1].error == f.error
        else:
            assert f.status == "done" and f.result == i and f.error is None


def test_failure_without_message_names_the_exception(queue):
    def fn(progress, cancel):
        raise KeyError

    assert queue.wait(queue.submit("x", fn).id, TIMEOUT).error == "KeyError"


def test_write_back_runs_on_success_and_its_failure_fails_the_job(queue):
    written = []
    ok = queue.submit("ok", lambda p, c: 41, on_done=lambda r: written.append(r + 1))
    assert queue.wait(ok.id, TIMEOUT).status == "done" and written == [42]

    def broken_write(result):
        raise OSError("disk full")

    bad = queue.submit("bad", lambda p, c: 1, on_done=broken_write)
    final = queue.wait(bad.id, TIMEOUT)
    assert final.status == "failed" and final.error == "saving the result failed: OSError: disk full"
    failed_job = queue.submit("raises", lambda p, c: 1 / 0, on_done=lambda r: written.append("never"))
    assert queue.wait(failed_job.id, TIMEOUT).status == "failed" and written == [42]


def test_progress_reaches_listeners_in_order_and_is_clamped(queue, seed):
    rng = random.Random(seed)
    fractions = sorted(rng.uniform(0, 1) for _ in range(rng.randint(3, 20)))
    rec = Recorder()
    queue.add_listener(rec)

    def fn(progress, cancel):
        progress(-0.5, "before")
        for f in fractions:
            progress(f, f"at {f:.3f}")
        progress(7.0, "after")

    job = queue.submit("p", fn)
    queue.wait(job.id, TIMEOUT)
    seen = [s for s in rec.of(job.id) if s.status == "running" and s.message]
    assert [s.fraction for s in seen] == [0.0, *fractions, 1.0]
    assert [s.message for s in seen][1:-1] == [f"at {f:.3f}" for f in fractions]
    assert rec.of(job.id)[-1].status == "done"


def test_progress_notifications_are_throttled():
    q = JobQueue(progress_interval_s=60.0)
    rec = Recorder()
    q.add_listener(rec)

    def fn(progress, cancel):
        for i in range(1000):
            progress(i / 1000, f"{i}")

    job = q.submit("many", fn)
    q.wait(job.id, TIMEOUT)
    q.shutdown()
    statuses = [s.status for s in rec.of(job.id)]
    # submitted, running, one progress report (the first), done: not a thousand. The submit
    # notification reads the state as it is when sent, "running" if the worker already took it.
    assert len(statuses) == 4 and statuses[0] in ("pending", "running"), statuses
    assert statuses[1:] == ["running", "running", "done"]
    assert q.get(job.id).fraction == 1.0


def test_broken_listener_does_not_break_the_queue(queue):
    def broken(state):
        raise RuntimeError("listener bug")

    queue.add_listener(broken)
    rec = Recorder()
    remove = queue.add_listener(rec)
    job = queue.submit("x", lambda p, c: 3)
    assert queue.wait(job.id, TIMEOUT).result == 3
    remove()
    n = len(rec.states)
    queue.wait(queue.submit("y", lambda p, c: 4).id, TIMEOUT)
    assert len(rec.states) == n


def test_wait_times_out_and_shutdown_cancels_everything():
    q = JobQueue()
    in_loop = threading.Event()

    def forever(progress, cancel):
        while True:
            cancel.check()
            in_loop.set()
            time.sleep(0.005)

    running = q.submit("forever", forever)
    pending = q.submit("pending", lambda p, c: "never")
    assert in_loop.wait(TIMEOUT)
    with pytest.raises(TimeoutError):
        q.wait(running.id, timeout=0.05)
    q.shutdown(timeout=TIMEOUT)
    assert q.get(running.id).status == "cancelled"
    assert q.get(pending.id).status == "cancelled"
    with pytest.raises(RuntimeError, match="shut down"):
        q.submit("late", lambda p, c: None)


def test_history_is_bounded():
    q = JobQueue(keep_finished=3)
    ids = [q.submit(f"j{i}", lambda p, c: None).id for i in range(6)]
    q.wait_idle(TIMEOUT)
    assert [s.id for s in q.jobs()] == ids[-3:]
    with pytest.raises(KeyError):
        q.get(ids[0])
    q.shutdown()


def test_identical_pending_jobs_merge_and_the_queue_is_bounded():
    """The probe: one burst of clicks queued 22 identical reconstructions (32 clicks to cancel)."""
    q = JobQueue(max_pending=5)
    started, release = threading.Event(), threading.Event()
    running = q.submit("busy", blocker(started, release))
    assert started.wait(10)
    first = q.submit("recon", lambda p, c: 1, key=("recon", "cap", "model"))
    again = [q.submit("recon", lambda p, c: 2, key=("recon", "cap", "model")) for _ in range(20)]
    assert {s.id for s in again} == {first.id}
    other = [q.submit(f"other {i}", lambda p, c: 3, key=("other", i)) for i in range(4)]
    with pytest.raises(ValueError, match="5 jobs are waiting"):
        q.submit("one too many", lambda p, c: 4)
    assert q.cancel_pending() == 5
    assert all(q.get(s.id).status == "cancelled" for s in [first, *other])
    assert q.get(running.id).status == "running"
    release.set()
    assert q.wait(running.id, 10).status == "done"
    # once the twin ran, an identical submission is a new job
    assert q.submit("recon", lambda p, c: 5, key=("recon", "cap", "model")).id != first.id
    q.shutdown()
