"""Answers for recordings: predict (one file or many, sharded and resumable jobs), the long-audio timeline
(segment), speaking time, result files (CSV, JSON, TextGrid) and microphone recording.

May import: the top-level modules, :mod:`voicegender.audio`, :mod:`voicegender.speech` and
:mod:`voicegender.voice`. Models are used only through :class:`voicegender.voice.model.Model`.
"""
