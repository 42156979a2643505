"""The one exception type of media decoding."""

from __future__ import annotations

import os

__all__ = ["MediaError"]


class MediaError(Exception):
    """A media file is missing, unreadable, corrupt, truncated or has no usable stream.

    ``path`` names the file and ``reason`` the cause; ``str(err)`` gives both, so a caller that
    skips the clip can report it without more context.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
