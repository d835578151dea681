"""Log records as single lines, secrets redacted: what log shippers and ``grep`` expect.

A database error is often several lines (libpq adds ``Is the server running...``) and a
traceback always is; a shipper that splits on newlines turns one record into many, some without
a timestamp or level. :class:`OneLineFormatter` escapes line breaks in the whole record (message,
traceback, stack) as ``\\n``, and redacts passwords in it as the last line of defence.
"""

from __future__ import annotations

import logging

from stackwatch.core.redact import redact_text

__all__ = ["LOG_FORMAT", "OneLineFormatter"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose output never spans lines nor holds a password."""

    def format(self, record: logging.LogRecord) -> str:
        text = redact_text(super().format(record))
        return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
