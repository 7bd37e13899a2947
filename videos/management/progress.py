"""Progress for long commands: a bar on a terminal, plain lines in a log (cron)."""

import time

LINE_EVERY_SECONDS = 10


class Progress:
    def __init__(self, stream, total, label):
        self.stream = stream
        self.total = total
        self.label = label
        self.done = 0
        self.on_terminal = hasattr(stream, "isatty") and stream.isatty()
        self._last_line = time.monotonic()

    def step(self, note=""):
        self.done += 1
        if self.on_terminal:
            width = 30
            filled = int(width * self.done / self.total) if self.total else width
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}", ending="")
            self.stream.flush()
        elif time.monotonic() - self._last_line >= LINE_EVERY_SECONDS or self.done == self.total:
            self._last_line = time.monotonic()
            self.stream.write(f"{self.label}: {self.done}/{self.total}{' ' + note if note else ''}")

    def finish(self):
        if self.on_terminal and self.total:
            self.stream.write("")
