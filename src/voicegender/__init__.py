"""voicegender: speaker gender from any recording."""
__version__ = "0.1.0"
