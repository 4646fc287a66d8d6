"""The tests' databases (the fixtures are in conftest.py).

COI_TEST_ENGINE=sqlite (default) or postgresql; postgresql needs COI_TEST_POSTGRES_URL, a
server where the user may create databases (a scratch database is made for the run and
dropped after it)."""

from __future__ import annotations

import os

ENGINE = os.environ.get("COI_TEST_ENGINE", "sqlite")
