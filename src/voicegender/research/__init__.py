"""The seed reproduction bench: features (the seed's MFCC pipeline, log-mel), datasets, speaker-disjoint splits,
torch networks (ResNet, SmallCNN), training (also distributed under torchrun), evaluation, reports and attribution
maps (Grad-CAM family, Integrated Gradients, occlusion).

May import: the top-level modules, :mod:`voicegender.audio`, :mod:`voicegender.speech` and
:mod:`voicegender.voice`. Nothing outside cli/ and web/ imports it: its checkpoints reach ``predict`` and
``segment`` as :class:`voicegender.voice.model.Model` objects.
"""
