"""What the tests share: the in-process CLI runner, small SPEC §4 files, the CLI as a subprocess.

Imported as ``support`` (pytest puts ``tests/`` on ``sys.path`` for its root conftest).
"""
