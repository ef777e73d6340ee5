"""erasure.scheduling: Snakemake's scheduler keeps one pending wake-up timer, a daemon."""
import threading
import time

from erasure import scheduling


class Scheduler:   # what schedule_once touches of Snakemake's JobScheduler
    def __init__(self):
        self._open_jobs = threading.Semaphore(0)


def wakeups(scheduler, wait):
    count = 0
    deadline = time.monotonic() + wait
    while scheduler._open_jobs.acquire(timeout=max(0.0, deadline - time.monotonic())):
        count += 1
    return count


def test_many_passes_arm_one_wakeup_and_the_pass_it_starts_arms_the_next():
    s = Scheduler()
    for _ in range(50):   # fifty scheduling passes within the timespan: Snakemake's own method arms fifty timers
        scheduling.schedule_once(s, 0.05)
    assert s._pending_wakeup.daemon     # a finished run never waits for it at exit
    assert wakeups(s, 0.5) == 1
    scheduling.schedule_once(s, 0.05)   # the pass that wake-up started
    assert wakeups(s, 0.5) == 1


def test_the_installed_snakemake_is_patched():
    # Fails when Snakemake's scheduler no longer has the method: revisit erasure/scheduling.py then.
    from snakemake.scheduling.job_scheduler import JobScheduler
    assert scheduling.install()
    assert JobScheduler._schedule_reevalutation is scheduling.schedule_once
