"""Progress of an upload: a one-line bar on a terminal, a callback for programs, or nothing."""

import sys
import threading
import time

BAR_WIDTH = 30
REDRAW_EVERY_SECONDS = 0.1
MIB = 1024 * 1024


def format_line(sent, total, seconds, sent_this_run=None):
    """`` 37% [###...] 94.0/256.0 MiB 31.2 MiB/s``: the rate counts only the bytes sent
    in ``seconds`` (a resumed upload's earlier bytes are not part of it)."""
    fraction = sent / total if total else 1.0
    filled = int(BAR_WIDTH * fraction)
    moved = sent if sent_this_run is None else sent_this_run
    rate = moved / seconds / MIB if seconds > 0 else 0.0
    return (
        f"{int(fraction * 100):3d}% [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        f"{sent / MIB:.1f}/{total / MIB:.1f} MiB {rate:.1f} MiB/s"
    )


class Progress:
    """Counts the bytes the target has acknowledged; thread-safe (parts land in parallel)."""

    def __init__(self, total, report=None):
        self.total = total
        self.sent = 0
        self._report = report  # report(sent, total), or None
        self._lock = threading.Lock()

    def restart(self, sent):
        """A new target (or a resume) holds ``sent`` bytes already."""
        with self._lock:
            self.sent = sent
        self._emit()

    def add(self, size):
        with self._lock:
            self.sent += size
        self._emit()

    def finish(self):
        pass

    def _emit(self):
        if self._report is not None:
            self._report(self.sent, self.total)


class TerminalProgress(Progress):
    """Redraws one line on ``stream`` with ``\\r``, at most ten times a second."""

    def __init__(self, total, stream):
        super().__init__(total)
        self.stream = stream
        self._clock_started = time.monotonic()
        self._first_sent = 0
        self._drawn_at = 0.0

    def restart(self, sent):
        with self._lock:
            self.sent = sent
            self._first_sent = sent
            self._clock_started = time.monotonic()
        self._draw(force=True)

    def add(self, size):
        with self._lock:
            self.sent += size
        self._draw(force=self.sent >= self.total)

    def finish(self):
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, force=False):
        now = time.monotonic()
        with self._lock:
            if not force and now - self._drawn_at < REDRAW_EVERY_SECONDS:
                return
            self._drawn_at = now
            line = format_line(self.sent, self.total, now - self._clock_started, self.sent - self._first_sent)
            self.stream.write("\r" + line)
            self.stream.flush()


def progress_for(option, total, stream=None):
    """``progress=True``: a bar when ``stream`` (stderr) is a terminal, nothing otherwise;
    a callable gets ``(sent, total)``; ``False`` or ``None``: nothing."""
    if callable(option):
        return Progress(total, option)
    stream = sys.stderr if stream is None else stream
    if option and hasattr(stream, "isatty") and stream.isatty():
        return TerminalProgress(total, stream)
    return Progress(total)
