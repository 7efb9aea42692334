"""Where the speech is: silero-vad's model (its back ends, streaming), speech regions, the lenient passes for short
words, the tone check, and synthetic sounds that are not speech.

May import: the top-level modules and :mod:`voicegender.audio`.
"""
