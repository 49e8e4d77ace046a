"""`python -m aiops_assets.cli`: the same as the `aiops` script."""

import sys

from aiops_assets.cli import main

sys.exit(main())
