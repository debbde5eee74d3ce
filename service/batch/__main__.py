"""``python -m service.batch``: see ``service.batch.cli``."""

import sys

from .cli import main

sys.exit(main())
