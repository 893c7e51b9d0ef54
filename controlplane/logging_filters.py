"""Log filters that keep credentials out of log lines."""

import logging
from urllib.parse import urlsplit


def _origin_only(value):
    text = str(value)
    if "://" not in text:
        return value
    parts = urlsplit(text)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…" if parts.path not in ("", "/") or parts.query \
        else text


class RedactURLPaths(logging.Filter):
    """httpx logs every request's full URL (at INFO), and some URLs are credentials (a Slack webhook's path,
    a token in a query string). Keep the scheme and host; drop user info, path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_origin_only(arg) if "://" in str(arg)[:16] else arg for arg in record.args)
        elif isinstance(record.msg, str) and "://" in record.msg and not record.args:
            record.msg = " ".join(_origin_only(word) if "://" in word else word for word in record.msg.split(" "))
        return True
