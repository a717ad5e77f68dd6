"""``python -m torchweir`` is the ``torchweir`` command."""

import sys

from torchweir.cli import main

sys.exit(main())
