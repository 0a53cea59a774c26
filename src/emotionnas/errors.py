"""Exceptions with one-line messages that name the offending file or value."""
import re

_OBJECT_REPR = re.compile(r"<[^<>\n]* at 0x[0-9a-fA-F]+>")


def scrub(text: str, name: str = "the input") -> str:
    """One line, with Python object reprs (`<_io.BytesIO object at 0x...>`) replaced by `name`."""
    return _OBJECT_REPR.sub(name, " ".join(str(text).split()))


class EmotionNASError(Exception):
    """Base class: every error the toolkit raises on bad input."""


class AudioError(EmotionNASError):
    """An audio file that cannot be used (unreadable, empty, silent, NaN, over a limit, ...).
    `limit` is True when a limit refused it (a 413 for the service), not its content."""

    def __init__(self, path, reason: str, limit: bool = False):
        self.path = scrub(path, "upload")
        self.reason = scrub(reason, self.path)
        self.limit = limit
        super().__init__(f"{self.path}: {self.reason}")


class CorpusError(EmotionNASError):
    """A corpus folder or manifest that does not have the expected layout."""


class LeakageError(EmotionNASError):
    """A speaker appears in more than one of train / validation / test."""


class ConfigError(EmotionNASError):
    """A configuration value or file that is malformed."""


class DiskError(EmotionNASError):
    """A write that the disk refused (full, over quota, read-only, no permission). Names the
    path; finished work is saved, so the same command resumes once there is room. Made by
    `disk_error` (a plain message argument, so it crosses process boundaries intact)."""


def disk_error(path, error: OSError) -> DiskError:
    return DiskError(f"{path}: cannot write ({error.strerror or type(error).__name__}); free space or fix the "
                     "folder, then run the same command again to resume")


class IntegrityError(ConfigError):
    """A weights file whose content is not what its record says (sha256 mismatch, truncated)."""


class EncoderError(EmotionNASError):
    """An encoder that cannot be built: unknown name, missing weights, bad model file."""
