"""Cases solved in parallel and resumably, for every command that solves many configs.

A case is a named, validated config (and, to evaluate a plan instead of optimising one, its
lots). Cases run in worker processes: a local process pool, or a Dask cluster. A worker gets the
case's config as plain data and builds and solves the model there (OR-tools models do not pickle).
A local worker writes its own case folder (same disk) and returns only the summary, a message
small enough to reach the parent in one write; a Dask worker returns the folder's files as bytes
and the parent writes them. Either way a folder is written whole and atomically, so a killed
worker or an interrupted run leaves no half-written file, and a case whose ``summary.json`` holds
the same config hash is finished and is not solved again.

Used by studies, explain, saa, coalition and compare (``run_cases``), and by evaluate and
simulate (``parallel_map``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import as_completed as as_completed_local
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from stockpile.config import Config, validate
from stockpile.errors import OptionError
from stockpile.jsontypes import JSON
from stockpile.results.outputs import FINISHED_FILE, run_files, write_folder


@dataclass
class Case:
    """One fully resolved case of a study."""

    name: str
    overrides: dict[str, Any]
    config: Config
    lots: dict[str, dict[str, int]] | None = None  # a first-stage plan to evaluate instead of optimise
    is_base: bool = False  # the case is the base config itself (a study report highlights it)

    @property
    def hash(self) -> str:
        if self.lots is None:
            return self.config.hash()
        text = json.dumps(self.lots, sort_keys=True)
        return hashlib.sha256((self.config.hash() + text).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------
# Workers


def run_case(payload: JSON) -> JSON:
    """Solve one case in a worker. With payload["out"] (a local pool: same disk) the worker writes
    the case folder itself and returns only the summary, a message small enough to reach the
    parent in one write: a worker killed while sending megabytes of tables leaves a partial
    message that blocks the pool for ever. Otherwise (Dask) the files come back as bytes."""
    from stockpile.api import solve

    cfg = validate(payload["config"], f"case {payload['name']}")
    cfg._provenance = payload["provenance"]
    start = time.perf_counter()
    result = solve(cfg, lots=payload.get("lots"))
    summary = result.summary.to_dict()
    files = run_files(summary, result.tables(), result.config)
    answer = {"name": payload["name"], "summary": summary, "seconds": time.perf_counter() - start}
    if "out" in payload:
        write_folder(Path(payload["out"]) / "cases" / payload["name"], files)
        return answer
    return answer | {"files": files}


def _payload(case: Case, out: Path | None = None) -> JSON:
    """What a worker needs to solve a case; out: write its folder there (local workers only)."""
    payload = {
        "name": case.name,
        "config": case.config.resolved_dict(),
        "provenance": case.config.provenance,
        "lots": case.lots,
    }
    return payload if out is None else payload | {"out": str(out)}


def _store(out: Path, answer: JSON) -> None:
    """Write a finished case's folder as a whole, unless its worker did; a crash leaves the
    earlier folder or none."""
    if "files" in answer:
        write_folder(out / "cases" / answer["name"], answer["files"])


def finished_summary(out: Path, case: Case) -> JSON | None:
    """The stored summary of a case if it was solved from the same resolved config."""
    path = out / "cases" / case.name / FINISHED_FILE
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = summary.get("config_hash") == case.config.hash() and summary.get("fixed_lots") == case.lots
    return summary if same else None


# ----------------------------------------------------------------------------
# Running cases


Progress = Callable[[str, str, JSON | None], None]  # (event, case name, summary)


Results = dict[str, tuple[JSON | None, str | None]]  # case name -> (summary, error)


def resolve_workers(workers: int | None) -> int:
    """Parallel solves: as asked, else one per core."""
    return workers or os.cpu_count() or 1


def run_cases(
    cases: list[Case],
    out: Path,
    results: Results,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> None:
    """Solve every unfinished case, filling results as cases finish (so an interrupt keeps them)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for case in cases:
        done = finished_summary(out, case)
        if done is not None:
            results[case.name] = (done, None)
            if progress:
                progress("cached", case.name, done)
        else:
            todo.append(case)
    check_scheduler(scheduler)
    workers = resolve_workers(workers)
    if todo:
        runner = _run_dask if scheduler else _run_local
        runner(todo, out, workers, scheduler, results, progress)


def _finish(out: Path, answer: JSON, results: Results, progress: Progress | None) -> None:
    _store(out, answer)
    results[answer["name"]] = (answer["summary"], None)
    if progress:
        progress("done", answer["name"], answer["summary"])


def _fail(name: str, error: str, results: Results, progress: Progress | None) -> None:
    results[name] = (None, error)
    if progress:
        progress("failed", name, None)


def _interrupted_worker(signum: int, frame: object) -> None:
    """Ctrl-C reaches the whole process group: a worker ends quietly, as SystemExit (which a
    process ends on without a traceback); the parent says what finished and how to resume."""
    raise SystemExit(130)


def _quiet_worker() -> None:
    """Initializer of every worker process."""
    signal.signal(signal.SIGINT, _interrupted_worker)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the workers before the pool's queues close: a worker still reading its queue when they
    close (one the Ctrl-C missed) would die on EOFError with a traceback on the user's terminal.
    A killed worker loses only its unfinished case: each case's folder is written atomically."""
    workers = getattr(pool, "_processes", None) or {}  # pid -> process (not public: absent, none ended)
    for proc in list(workers.values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _run_local(
    todo: list[Case],
    out: Path,
    workers: int,
    _scheduler: str | None,
    results: Results,
    progress: Progress | None,
    restarts: int = 2,
) -> None:
    """A local process pool; a pool broken by a killed worker is restarted for the cases left."""
    import multiprocessing as mp

    pending = list(todo)
    while pending:
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(pending)), mp_context=ctx, initializer=_quiet_worker
        ) as pool:
            futures: dict[Future[JSON], Case] = {pool.submit(run_case, _payload(c, out)): c for c in pending}
            if progress:
                for c in pending:
                    progress("submitted", c.name, None)
            broken = False
            try:
                remaining = set(futures)
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        case = futures[fut]
                        try:
                            _finish(out, fut.result(), results, progress)
                        except BrokenProcessPool:
                            broken = True
                        except Exception as exc:  # a case that fails is reported, the rest go on
                            _fail(case.name, f"{type(exc).__name__}: {exc}", results, progress)
            except BaseException:
                _stop(pool)
                raise
        pending = [c for c in pending if c.name not in results]
        if pending and (not broken or restarts <= 0):
            for c in pending:
                _fail(c.name, "worker process died", results, progress)
            return
        if pending and progress:
            progress("restart", f"{len(pending)} cases", None)
        restarts -= 1


SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://[^\s/:]+(:\d{1,5})?/?$")
SCHEDULER_CONNECT_SECONDS = 10


def check_scheduler(scheduler: str | None) -> None:
    """'local' or a Dask address such as tcp://host:8786; anything else is refused before any work."""
    if scheduler is None or scheduler == "local" or SCHEDULER_ADDRESS.match(scheduler):
        return
    hint = " (did you mean 'local'?)" if difflib.get_close_matches(scheduler, ["local"], cutoff=0.6) else ""
    raise OptionError(
        f"--scheduler {scheduler!r}: expected 'local' or a Dask scheduler address like tcp://host:8786{hint}"
    )


@contextmanager
def dask_client(scheduler: str, workers: int) -> Iterator[Any]:
    """A Dask client: ``local`` starts a LocalCluster of single-threaded worker processes,
    anything else is a scheduler address (refused in one line when nothing answers)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise OptionError("--scheduler needs Dask, which is not installed: pip install 'stockpile[dask]'") from None
    # Dask sets its own loggers to INFO; they speak only as loudly as stockpile's (-v, --debug)
    logging.getLogger("distributed").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
    cluster = (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        if scheduler == "local"
        else None
    )
    try:
        try:
            client = Client(cluster if cluster is not None else scheduler, timeout=SCHEDULER_CONNECT_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise OptionError(
                f"--scheduler {scheduler}: no Dask scheduler answered within "
                f"{SCHEDULER_CONNECT_SECONDS} s ({type(exc).__name__})"
            ) from None
        with client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def _run_dask(
    todo: list[Case], out: Path, workers: int, scheduler: str | None, results: Results, progress: Progress | None
) -> None:
    """Cases on a Dask cluster (``dask_client``)."""
    assert scheduler is not None
    with dask_client(scheduler, workers) as client:
        from distributed import as_completed  # importable: dask_client checked

        # pure=False with unique keys: identical payloads are still solved, each once
        futures = [client.submit(run_case, _payload(c), pure=False, key=f"case-{c.name}-{c.hash}") for c in todo]
        names = {f.key: c.name for f, c in zip(futures, todo)}
        if progress:
            for c in todo:
                progress("submitted", c.name, None)
        for fut in as_completed(futures):
            if fut.status == "finished":
                _finish(out, fut.result(), results, progress)
            else:
                _fail(names[fut.key], f"{fut.exception()!r}", results, progress)


def parallel_map(
    fn: Callable[[JSON], Any],
    payloads: list[JSON],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """fn over payloads, in order: in this process for one worker or one payload, else a local
    process pool or a Dask cluster (as for studies). progress(done, total) after each."""
    check_scheduler(scheduler)
    total, done = len(payloads), 0
    if scheduler:
        with dask_client(scheduler, resolve_workers(workers)) as client:
            from distributed import as_completed  # importable: dask_client checked

            futures = client.map(fn, payloads, pure=False)
            for _ in as_completed(futures):
                done += 1
                if progress:
                    progress(done, total)
            return cast(list[Any], client.gather(futures))
    n = min(resolve_workers(workers), total)
    if n <= 1:
        out = []
        for payload in payloads:
            out.append(fn(payload))
            done += 1
            if progress:
                progress(done, total)
        return out
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("forkserver"), initializer=_quiet_worker) as pool:
        local: list[Future[Any]] = [pool.submit(fn, p) for p in payloads]
        for _ in as_completed_local(local):
            done += 1
            if progress:
                progress(done, total)
        return [f.result() for f in local]
