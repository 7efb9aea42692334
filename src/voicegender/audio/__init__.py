"""Sound in and out: decoding any file to float32 mono (whole or streamed in blocks), resampling, the channels
recordings pass through (telephone, codecs, noise, rooms) and synthetic test sounds.

May import: the top-level modules (errors, fileio, ...). Nothing here knows about speech, voices or models.
"""
