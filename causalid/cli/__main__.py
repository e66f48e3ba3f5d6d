"""``python -m causalid.cli``: the ``causalid`` command."""

import sys

from causalid.cli.main import main

sys.exit(main())
