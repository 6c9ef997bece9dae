"""Untested eval paths: the arms of models' mode branches that a test suite never ran (MDL501/MDL502).

`report` turns coverage.py branch data into findings; `pytest_plugin` collects that data during a
pytest session (`pytest --modelint-modes`). Nothing here imports torch; coverage.py is imported
only when measuring.
"""
