"""Training: typed config, schedules, loss routing, the trainer loop, DDP and the demo.

Import the pieces from their modules (``unidual.train.config``, ``.schedule``,
``.objectives``, ``.trainer``); this package imports nothing eagerly so the
pure parts work without the data package.
"""
