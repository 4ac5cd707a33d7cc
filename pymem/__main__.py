"""`python -m pymem` runs the `pymem` command."""
import sys

from .cli import main

sys.exit(main())
