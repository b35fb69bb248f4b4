"""`python -m zhiban`: the `zhiban` command (how `--web-procs` starts its sibling web processes)."""

from zhiban.cli import main

main()
