"""``python -m mpp_client``: the same as the ``mpp`` command (works without the console script
on PATH, e.g. in a venv that is not activated)."""

import sys

from mpp_client.cli import main

sys.exit(main())
