"""`python -m tests.run_cli ARGS`: the omnicrm command at the suite's clock.

Servers the tests start as processes run through this, so `OMNICRM_TEST_CLOCK_SHIFT_DAYS`
(see `tests/conftest.py`) moves their clock as it moves the suite's own, and they hash
passwords with the suite's cheap parameters.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from core import clock, passwords
from web.cli import main

if __name__ == "__main__":
    passwords.install(passwords.CHEAP)
    if days := os.environ.get("OMNICRM_TEST_CLOCK_SHIFT_DAYS"):
        clock.install(clock.ShiftedClock(timedelta(days=float(days))))
    sys.exit(main())
