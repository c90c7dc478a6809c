"""Long jobs of the app (an embedding run, a UMAP map) in background threads, one per name, shared
by every session of the server process; pages poll their progress."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from al_core.errors import AlExplorerError
from pages._ui.text import plain


@dataclass
class Job:
    """A running or finished job: ``done`` of ``total`` steps, a status line, its outcome."""

    name: str
    status: str = "running"  # running, done, failed, stopped
    message: str = ""
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @property
    def running(self) -> bool:
        return self.status == "running"

    def eta(self) -> str:
        elapsed = time.time() - self.started
        if not self.total or not self.done:
            return f"{elapsed:.0f} s"
        rate = self.done / max(elapsed, 1e-9)
        return f"{elapsed:.0f} s, {rate:.0f}/s, about {(self.total - self.done) / max(rate, 1e-9):.0f} s left"


_START_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False)
def _registry() -> dict[str, Job]:
    return {}


def get(name: str) -> Job | None:
    return _registry().get(name)


def start(name: str, work: Callable[[Job], str]) -> Job:
    """Run ``work(job)`` in a thread (unless a job of that name is running); its return value is
    the final message. An :class:`AlExplorerError` ends it as failed with its message."""
    jobs = _registry()
    with _START_LOCK:  # two sessions clicking at once start one job
        current = jobs.get(name)
        if current is not None and current.running:
            return current
        job = Job(name=name)
        jobs[name] = job

    def run() -> None:
        try:
            job.message = work(job)
            job.status = "stopped" if job.stop.is_set() else "done"
        except AlExplorerError as err:
            job.status, job.message = "failed", str(err)
        except Exception as err:  # noqa: BLE001 - a thread's error must reach the page, not vanish
            job.status = "failed"
            job.message = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
        job.finished = time.time()

    threading.Thread(target=run, name=f"al-job-{name}", daemon=True).start()
    return job


def show(name: str, label: str) -> None:
    """The job's progress while it runs (polled every second); when it ends, the page reruns."""
    job = get(name)
    if job is None:
        return

    @st.fragment(run_every=1.0 if job.running else None)
    def _poll() -> None:
        now = get(name)
        if now is None:
            return
        if now.running:
            frac = now.done / now.total if now.total else 0.0
            st.progress(min(frac, 1.0), text=f"{label}: {now.done:,} of {now.total:,} ({now.eta()})"
                        if now.total else f"{label}: {now.message or 'working'} ({now.eta()})")
            st.button("Stop", key=f"job_stop_{name}", on_click=now.stop.set)
        elif not st.session_state.get(f"_job_seen_{name}") == now.finished:
            st.session_state[f"_job_seen_{name}"] = now.finished
            st.rerun(scope="app")
    _poll()
    if not job.running and job.message:
        (st.error if job.status == "failed" else st.caption)(plain(f"{label}: {job.message}"))
