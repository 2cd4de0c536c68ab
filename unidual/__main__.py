"""`python -m unidual ...` (what torchrun launches) is the `unidual` command."""

import sys

from unidual.cli import main

sys.exit(main())
