"""One progress-bar helper (rich) for all long work; ``enabled=False`` (``--quiet``) is silent."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBar:
    """Context manager around a single rich progress task.

    >>> with ProgressBar(total=3, description="pruning", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    """

    def __init__(
        self, total: int | None, description: str = "working", enabled: bool = True
    ) -> None:
        self.total, self.description, self.enabled = total, description, enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, amount: float = 1.0, description: str | None = None) -> None:
        """Move the bar on by ``amount``; optionally change its label."""
        if self._progress is not None:
            kwargs = {"description": description} if description else {}
            self._progress.update(self._task, advance=amount, **kwargs)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
            self._progress = None
