"""`python -m attnlab ...` runs the `attnlab` command, under torchrun too (`torchrun -m attnlab ...`)."""

import sys

from attnlab.cli import main

sys.exit(main())
