"""`python -m labsky`: the same as the `labsky` command."""

from labsky.cli import main

main()
