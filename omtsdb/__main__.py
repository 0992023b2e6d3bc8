"""``python -m omtsdb``: the same CLI as the ``omtsdb`` console script."""

import sys

from omtsdb.cli.main import main

sys.exit(main())
