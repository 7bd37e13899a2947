import io

from django.core.management.base import OutputWrapper

from videos.management.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place():
    screen = Terminal()
    progress = Progress(OutputWrapper(screen), 4, "Moving")

    for _ in range(4):
        progress.step()
    progress.finish()

    assert screen.getvalue().split("\r")[1:] == [
        "Moving [#######.......................] 1/4",
        "Moving [###############...............] 2/4",
        "Moving [######################........] 3/4",
        "Moving [##############################] 4/4\n",
    ]


def test_a_log_gets_plain_lines_and_always_the_last():
    log = io.StringIO()
    progress = Progress(OutputWrapper(log), 3, "Moving")

    for _ in range(3):
        progress.step()
    progress.finish()

    assert log.getvalue() == "Moving: 3/3\n"
