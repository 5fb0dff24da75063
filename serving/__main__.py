"""`python -m serving`: the serving commands of `microstrain` on their own."""

from microstrain.app import make_app, run
from serving.cli import register

run(make_app(register, help="microstrain: serving commands"))
