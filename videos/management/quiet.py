"""The HTTP libraries' own warnings, kept out of the commands' output.

urllib3 logs a WARNING for each retry of a connection ("Retrying (Retry(total=...))
after connection broken by ..."); a command that checks a provider says in its own
line what failed, so those lines only bury it.
"""

import contextlib
import logging

HTTP_LIBRARY_LOGGERS = ("urllib3", "botocore")


@contextlib.contextmanager
def quiet_http_libraries():
    """Within the block, the HTTP libraries log errors only; their levels are restored after."""
    loggers = [logging.getLogger(name) for name in HTTP_LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
