"""`python -m tokenlimit_core`: the command-line interface (see `cli`)."""
from .cli import main

raise SystemExit(main())
