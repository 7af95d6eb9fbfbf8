"""``python -m fds COMMAND ...``: the same as the ``fds`` command."""

import sys

from fds.cli import main

sys.exit(main())
