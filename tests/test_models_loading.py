"""Every process loads the contexts through ``services.models``: in a fresh interpreter it
alone must subscribe the observers of task history and register the grants' resolver (a
command-line seed that skips them would take tasks in without SLA clocks)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import services.models
from services.work import history
from tenants import grants
print(sorted(type(o).__name__ for o in history._observers), len(grants._resolvers))
"""


def test_services_models_alone_subscribes_every_observer() -> None:
    answer = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert answer.stdout.split("\n")[0] == "['AssignmentObserver', 'ClockObserver', 'OfferObserver'] 1", (
        answer.stdout + answer.stderr
    )
