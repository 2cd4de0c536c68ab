"""Weight surgery between image and video networks: ``unidual.surgery``.

The implementation lives with the models (:mod:`unidual.models.surgery`); this module is
the short public path the docs and configs use.
"""

from unidual.models.surgery import *  # noqa: F403
from unidual.models.surgery import __all__  # noqa: F401
