"""What the server's log may say.  Our own lines carry ids and counts only;
this module keeps uvicorn's from saying more.

uvicorn's access log is off (``cli.serve``), but its WebSocket protocol logs
one access line per connection on the ``uvicorn.error`` logger, at INFO:
``'%s - "WebSocket %s" [accepted]'`` with the client's address and the path
*with its query string*.  An address is personal data, and anything a
client puts in a query is logged word for word, so those lines are dropped
like the HTTP access lines they mirror.
"""

from __future__ import annotations

import logging

_WS_ACCESS = '%s - "WebSocket %s"'


class DropWebSocketAccessLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_WS_ACCESS))


def quiet_access_lines() -> None:
    """Install the filter on uvicorn's logger (once; safe to call again)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropWebSocketAccessLines) for f in logger.filters):
        logger.addFilter(DropWebSocketAccessLines())
