"""Entry point of the frozen edge agent: the `outpost-agent` command line, nothing else."""

import sys

from edge_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
