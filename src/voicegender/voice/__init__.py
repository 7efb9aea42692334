"""The shipped model: the GE2E speaker encoder (ONNX), acoustic measures (pitch, formants), the voice head, the
``Model`` interface every model kind implements (:mod:`voicegender.voice.model`), and the recipe that fits the
shipped head (``voicegender fit``: training copies of corpora, folds, calibration).

May import: the top-level modules, :mod:`voicegender.audio` and :mod:`voicegender.speech`.
"""
