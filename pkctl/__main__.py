"""``python -m pkctl``: the same entry point as the ``pkctl`` console script."""
import sys

from pkctl.main import main

sys.exit(main())
