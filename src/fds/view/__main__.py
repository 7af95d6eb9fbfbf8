"""``python -m fds.view OUT_DIR``."""

import sys

from fds.view import main

sys.exit(main())
