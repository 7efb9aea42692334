"""Exceptions raised for bad user input, or a disk that refuses an output. The CLI prints them as one line (no
traceback unless --debug)."""


class VoiceGenderError(Exception):
    """Base class for every error caused by the user's input (files, arguments, corpora)."""


class AudioDecodeError(VoiceGenderError):
    """A file is missing, empty, not audio, truncated or holds unusable samples."""


class CorpusError(VoiceGenderError):
    """A corpus folder or manifest cannot be read (missing columns, unknown speakers, no clips)."""


class ModelError(VoiceGenderError):
    """A checkpoint or weights file cannot be used (missing, wrong hash, incompatible)."""


class OutputError(VoiceGenderError):
    """An output file cannot be written (the disk is full or read-only, the path is not writable)."""
