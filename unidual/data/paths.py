"""Where the shared real data lives: $UNIDUAL_DATA, else ``../shared/data`` beside the project.

"The project" is the source checkout when unidual runs from one (an editable install: the
folder holding pyproject.toml above the package), else the working directory -- an installed
package has no project folder, and nothing else in the library depends on where it is installed.
"""

from __future__ import annotations

import os
from pathlib import Path


def source_checkout() -> Path | None:
    """The project folder if this package is imported from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "unidual").is_dir() else None


def shared_data_dir() -> Path:
    """The folder with images/ and videos/ (may not exist; callers check)."""
    env = os.environ.get("UNIDUAL_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return ((source_checkout() or Path.cwd()) / ".." / "shared" / "data").resolve()
