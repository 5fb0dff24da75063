"""`python -m microstrain_cli`: the `microstrain` command."""

from microstrain_cli import main

main()
