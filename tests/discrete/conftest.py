# The root tests/conftest.py pins one torch thread and puts this folder (with oracles.py) on sys.path.
