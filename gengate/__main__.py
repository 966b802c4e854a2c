"""`python -m gengate ...` is the `gengate` command. gengate starts its own processes this way, with
`python -P` (gengate/procs.py), so the current directory never shadows a module of ours."""

import sys

from gengate.cli import main

sys.exit(main())
