"""``python -m mpp_client.cli``: the same as the ``mpp`` command."""

import sys

from mpp_client.cli import main

sys.exit(main())
