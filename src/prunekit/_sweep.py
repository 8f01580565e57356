"""Parallel evaluation of independent candidates for the budget searches.

:class:`Runner` evaluates ``fn(*shared, *args)`` for many small ``args`` (one knob each):

* one worker: inline, in the caller's process and threads;
* the default joblib backend (loky processes): a reusable loky executor kept across searches;
  ``shared`` (the model, ``eval_fn`` with its data, ...) is pickled **once** into a temporary
  file and each worker loads it once per search, so a task carries only its knob. Each worker
  runs with ``cores // workers`` torch / OpenMP threads, so workers do not oversubscribe the
  cores;
* any other active joblib backend (``joblib.parallel_backend("threading" | "ray" | ...)``):
  batches of ``workers`` tasks through ``joblib.Parallel``, ``shared`` sent with each task.

:func:`scan` and :func:`bisect` drive a runner with the *serial* semantics (the same points, in
the same order, as one worker): candidates are dispatched ahead, as many as there are workers,
results are consumed in order, and work dispatched past the serial stopping point is dropped.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import tempfile
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from prunekit.errors import InvalidParameterError

__all__ = ["Runner", "bisect", "cpu_cores", "scan", "torch_threads"]

_IDLE_TIMEOUT_S = 300  # idle workers linger this long, so consecutive searches reuse them
_WORKER_SHARED: dict[str, Any] = {}  # in a worker process: token -> shared context (latest only)


def cpu_cores() -> int:
    """Cores this process may use (affinity and cgroup quotas counted, as joblib does)."""
    try:
        from joblib import cpu_count

        return max(1, int(cpu_count()))
    except ImportError:  # pragma: no cover - joblib is a core dependency
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (``0``: unchanged), then restore the previous
    number."""
    if n <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cloudpickle() -> Any:
    """cloudpickle (a joblib dependency since 1.5; vendored inside older joblib)."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib < 1.5
        from joblib.externals import cloudpickle
    return cloudpickle


def _thread_env(n: int) -> dict[str, str]:
    return {k: str(n) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _remote(token: str, path: str, fn: Callable[..., Any], threads: int, *args: Any) -> Any:
    """Worker side: load the search's shared context once (per worker), then run ``fn``."""
    shared = _WORKER_SHARED.get(token)
    if shared is None:
        shared = _load_shared(token, path)
    with torch_threads(threads):
        return fn(*shared, *args)


def _load_shared(token: str, path: str) -> Any:
    """Replace the worker's context by this search's.

    loky runs ``gc.collect()`` between tasks (at most once a second); with torch imported a
    full pass costs ~0.2 s. So what is alive when a context arrives (imported modules) is
    frozen out of the collections; the context itself is not, so that the next search's
    ``gc.collect()`` here frees it cheaply.
    """
    _WORKER_SHARED.clear()  # one search at a time
    modules = len(sys.modules)
    gc.collect()
    gc.freeze()
    with open(path, "rb") as fh:
        shared = _cloudpickle().load(fh)
    if len(sys.modules) > modules:  # loading imported modules (a fresh worker): freeze them too
        gc.freeze()
    _WORKER_SHARED[token] = shared
    return shared


def _warm(token: str, path: str, fn: Callable[..., Any]) -> None:
    """Worker side: load the shared context (and, by unpickling ``fn``, import its module)
    before the first candidate arrives."""
    _remote(token, path, _noop, 0)


def _call(fn: Callable[..., Any], shared: tuple[Any, ...], threads: int, *args: Any) -> Any:
    """A task of another joblib backend (threads, Ray, ...): everything travels with it."""
    with torch_threads(threads):
        return fn(*shared, *args)


def _forget(token: str) -> None:
    """Worker side: drop a finished search's context (sent once per worker process at the end
    of a search; best effort)."""
    _WORKER_SHARED.pop(token, None)


def _noop(*_: Any) -> None:
    return None


class Task:
    """One evaluation: on a worker process (``future``), or deferred to the caller's process,
    which runs it when its result is needed or while it waits for a worker."""

    def __init__(self, runner: Runner, args: tuple[Any, ...], future: Any = None) -> None:
        self.runner, self.args, self.future = runner, args, future
        self.ran, self.value, self.error = False, None, None

    def done(self) -> bool:
        return self.ran or (self.future is not None and self.future.done())

    def result(self) -> Any:
        return self.runner._result(self)

    def cancel(self) -> None:
        if self.future is not None:
            self.future.cancel()
        elif not self.ran:
            self.runner._drop(self)


class Runner:
    """Evaluate ``fn(*shared, *args)`` with ``workers`` evaluations at a time; a context manager.

    The calling process is one of the ``workers``: it evaluates a task itself when no worker
    process is free, and while the worker processes start (so a parallel search never waits on
    the start-up of its workers: until they are ready it simply runs serially). ``submit(*args)``
    returns a :class:`Task`; results are asked for in submission order.
    """

    def __init__(self, fn: Callable[..., Any], shared: Sequence[Any], workers: int) -> None:
        self.fn, self.shared, self.workers = fn, tuple(shared), max(1, int(workers))
        self.threads = 0  # torch threads per evaluation (0: leave the caller's as they are)
        self.mode = "inline"
        self._path: str | None = None
        self._token = uuid.uuid4().hex
        self._executor: Any = None
        self._warm: list[Any] = []  # one start-up future per worker process
        self._remote: list[Any] = []  # futures on worker processes, not yet done
        self._deferred: deque[Task] = deque()  # for the calling process, in submission order
        self._batch: list[tuple[tuple[Any, ...], Future]] = []
        self._warned = False
        if self.workers > 1:
            self._start()

    # -- lifecycle

    def _start(self) -> None:
        from joblib.parallel import get_active_backend

        backend, _ = get_active_backend(prefer="processes")
        uses_threads = bool(getattr(backend, "uses_threads", False))
        # threads share the caller's torch settings: never change them from several threads
        self.threads = 0 if uses_threads else max(1, cpu_cores() // self.workers)
        if type(backend).__name__ != "LokyBackend":
            self.mode = "joblib"
            return
        from joblib.externals.loky import get_reusable_executor

        fd, self._path = tempfile.mkstemp(prefix="prunekit-sweep-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as fh:
                _cloudpickle().dump(self.shared, fh)
        except Exception as exc:  # noqa: BLE001 - an unpicklable eval_fn / finetune / model
            self.close()
            raise InvalidParameterError(
                f"n_jobs={self.workers} sends the model, eval_fn and finetune to worker "
                f"processes, but they cannot be pickled ({type(exc).__name__}: "
                f"{str(exc)[:200]}); use n_jobs=1, or joblib.parallel_backend('threading')"
            ) from exc
        procs = self.workers - 1  # the calling process is the other one
        self._executor = get_reusable_executor(max_workers=procs, timeout=_IDLE_TIMEOUT_S,
                                               env=_thread_env(self.threads))
        self.mode = "loky"
        # start-up (imports, loading the shared context) overlaps with the caller's own work
        self._warm = [self._executor.submit(_warm, self._token, self._path, self.fn)
                      for _ in range(procs)]

    def close(self) -> None:
        """Remove the shared-context file and ask idle workers to drop their copy (the
        worker processes themselves stay up for the next search)."""
        if self._executor is not None:
            with contextlib.suppress(Exception):  # a broken or shut-down executor: nothing held
                for f in self._remote + self._warm:
                    f.cancel()
                for _ in range(self.workers - 1):
                    self._executor.submit(_forget, self._token)
            self._executor = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- tasks

    def _free_process(self) -> bool:
        """A worker process has started cleanly and has nothing to do."""
        ready = 0
        for f in self._warm:
            if not f.done() or f.cancelled():
                continue
            if f.exception() is None:
                ready += 1
            elif not self._warned:
                self._fall_back(f.exception(), "could not start or load the model / eval_fn")
        self._remote = [f for f in self._remote if not f.done()]
        return self.mode == "loky" and len(self._remote) < ready

    def _fall_back(self, exc: BaseException, what: str) -> None:
        """Worker processes unusable: warn once, go on in the calling process only."""
        self._warned = True
        self.mode = "local"
        warnings.warn(f"n_jobs={self.workers}: a worker process {what} ({type(exc).__name__}: "
                      f"{str(exc)[:200]}); the remaining candidates run in this process",
                      RuntimeWarning, stacklevel=4)

    def submit(self, *args: Any) -> Any:
        if self.mode == "joblib":
            fut: Future = Future()
            self._batch.append((args, fut))
            return _LazyFuture(fut, self)
        if self.mode == "loky" and self._free_process():
            try:
                f = self._executor.submit(_remote, self._token, self._path, self.fn,
                                          self.threads, *args)
            except BrokenProcessPool as exc:
                self._fall_back(exc, "died")
            else:
                self._remote.append(f)
                return Task(self, args, f)
        task = Task(self, args)
        self._deferred.append(task)
        return task

    def _run_here(self, task: Task) -> None:
        self._drop(task)
        try:
            with torch_threads(self.threads):
                task.value = self.fn(*self.shared, *task.args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by task.result()
            task.error = exc
        task.ran = True

    def _drop(self, task: Task) -> None:
        with contextlib.suppress(ValueError):
            self._deferred.remove(task)

    def _result(self, task: Task) -> Any:
        while not task.done():
            if task.future is None:
                self._run_here(task)
            elif self._deferred:  # work on a later task while the worker computes this one
                self._run_here(self._deferred[0])
            else:
                break
        if task.future is not None:
            try:
                return task.future.result()
            except BrokenProcessPool as exc:  # e.g. a worker killed for memory: redo it here
                self._fall_back(exc, "died")
                task.future = None
                self._run_here(task)
        if task.error is not None:
            raise task.error
        return task.value

    def map(self, arg_list: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``[fn(*shared, *args) for args in arg_list]``, in order, ``workers`` in flight."""
        todo, pending, out = iter(arg_list), deque(), []
        for a in todo:
            pending.append(self.submit(*a))
            if len(pending) >= self.workers:
                out.append(pending.popleft().result())
        out += [t.result() for t in pending]
        return out

    def cancel(self, tasks: Sequence[Any]) -> None:
        """Drop tasks the caller no longer needs (those not started never run)."""
        for t in tasks:
            t.cancel()

    def _run_batch(self) -> None:
        """joblib mode: run the queued tasks as one ``Parallel`` call."""
        batch, self._batch = self._batch, []
        batch = [(a, f) for a, f in batch if not f.cancelled()]
        if not batch:
            return
        from joblib import Parallel, delayed

        try:
            out = Parallel(n_jobs=min(self.workers, len(batch)), prefer="processes")(
                delayed(_call)(self.fn, self.shared, self.threads, *a) for a, _ in batch)
        except BaseException as exc:  # noqa: BLE001 - delivered through the futures
            for _, f in batch:
                f.set_exception(exc)
            return
        for (_, f), r in zip(batch, out, strict=True):
            f.set_result(r)


class _LazyFuture:
    """joblib mode: a future whose batch runs when a result is first asked for."""

    def __init__(self, fut: Future, runner: Runner) -> None:
        self._fut, self._runner = fut, runner

    def result(self) -> Any:
        if not self._fut.done():
            self._runner._run_batch()
        return self._fut.result()

    def cancel(self) -> None:
        self._fut.cancel()


def scan(knobs: Sequence[float], runner: Runner, record: Callable[[float, Any], bool],
         patience: int, args: tuple[Any, ...] = ()) -> list[tuple[float, bool]]:
    """Evaluate ``knobs`` in order until ``patience`` infeasible points in a row.

    Each knob runs as ``runner.submit(knob, *args)``; ``record(knob, result) -> feasible`` is
    called in knob order for exactly the knobs a serial
    scan evaluates; up to ``runner.workers`` knobs are in flight, those past the stop are
    dropped. Returns ``[(knob, feasible)]`` of the recorded points.
    """
    todo = iter(knobs)
    pending: deque[tuple[float, Any]] = deque()
    done: list[tuple[float, bool]] = []
    misses = 0

    def fill() -> None:
        while len(pending) < runner.workers:
            k = next(todo, None)
            if k is None:
                return
            pending.append((k, runner.submit(k, *args)))

    try:
        fill()
        while pending:
            k, fut = pending.popleft()
            ok = bool(record(k, fut.result()))
            done.append((k, ok))
            misses = 0 if ok else misses + 1
            if misses >= patience:
                break
            fill()
    finally:
        runner.cancel([f for _, f in pending])
    return done


def bisect(lo: float, hi: float, steps: int, runner: Runner,
           record: Callable[[float, Any], bool], args: tuple[Any, ...] = ()
           ) -> tuple[float, float]:
    """``steps`` bisection steps between a feasible ``lo`` and an infeasible ``hi``.

    With ``w`` workers the top ``floor(log2(w + 1))`` levels of the bisection tree are evaluated
    at once (speculatively); ``record`` sees only the serial path. Returns the final
    ``(lo, hi)``.
    """
    depth = max(1, int(math.log2(runner.workers + 1)))
    while steps > 0:
        d = min(depth, steps)
        futs: dict[tuple[bool, ...], Any] = {}
        level = [((), lo, hi)]
        for _ in range(d):  # breadth first: the serial next step is submitted first
            nxt = []
            for path, a, b in level:
                mid = (a + b) / 2
                futs[path] = runner.submit(mid, *args)
                nxt += [((*path, True), mid, b), ((*path, False), a, mid)]
            level = nxt
        path: tuple[bool, ...] = ()
        try:
            for _ in range(d):
                mid = (lo + hi) / 2
                ok = bool(record(mid, futs.pop(path).result()))
                lo, hi = (mid, hi) if ok else (lo, mid)
                path = (*path, ok)
        finally:
            runner.cancel(list(futs.values()))
        steps -= d
    return lo, hi
