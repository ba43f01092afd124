"""Progress of long passes over data: a tqdm bar where tqdm is installed, plain lines otherwise.

Both torch-facing estimators report through :class:`Progress`, so that a user sees the same
rows per second and time left whichever estimator runs.
"""

from __future__ import annotations

import datetime
import time

try:
    import tqdm.auto as _tqdm
except ImportError:  # tqdm is an optional extra: plain lines then
    _tqdm = None

_LINE_INTERVAL_S = 2.0


class Progress:
    """Report rows done, rows per second and time left while a pass runs.

    Parameters
    ----------
    description : str
        What the pass does, at the start of each report.
    total : int or None
        Rows the pass will read; None when the input has no length.
    total_batches : int or None, default=None
        Batches the pass will read, when known.
    verbose : int
        Nothing when 0. Otherwise a tqdm bar (on stderr) when tqdm is installed and ``bar``,
        and plain lines on stdout otherwise: the first batch, then at most one line every
        2 seconds, and the last batch.
    bar : bool, default=True
        Whether a tqdm bar may be used.
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        verbose: int,
        *,
        total_batches: int | None = None,
        bar: bool = True,
    ):
        self.description = description
        self.total = total
        self.total_batches = total_batches
        self.verbose = verbose
        self.rows = 0
        self.batches = 0
        self._start = time.perf_counter()
        self._last_line = -float("inf")
        self._bar = None
        if verbose and bar and _tqdm is not None:
            self._bar = _tqdm.tqdm(total=total, desc=description, unit="rows", unit_scale=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def update(self, rows: int) -> None:
        """Count one batch of ``rows`` rows as done."""
        self.rows += rows
        self.batches += 1
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.update(rows)
            return
        now = time.perf_counter()
        last = self.total is not None and self.rows >= self.total
        if last or self.batches == 1 or now - self._last_line >= _LINE_INTERVAL_S:
            self._last_line = now
            print(self.line(now - self._start))

    def line(self, elapsed: float) -> str:
        """The plain report after ``elapsed`` seconds."""
        rate = self.rows / elapsed if elapsed > 0 else float("inf")
        batches = f"{self.batches}" if self.total_batches is None else (
            f"{self.batches}/{self.total_batches}"
        )
        rows = f"{self.rows}" if self.total is None else f"{self.rows}/{self.total}"
        text = f"[skarchetype] {self.description}: {batches} batches, {rows} rows, "
        text += f"{rate:,.0f} rows/s"
        if self.total is not None and 0 < rate < float("inf"):
            left = datetime.timedelta(seconds=round((self.total - self.rows) / rate))
            text += f", {left} left"
        return text

    def close(self) -> None:
        """End the bar, if one is shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
