"""Run status codes, shared by every layer (a run's ``TrainState.status``).

>>> STATUS_NAMES[DIVERGED]
'diverged'
"""

RUNNING, STOPPED, DIVERGED = 0, 1, 2
STATUS_NAMES = {RUNNING: "ok", STOPPED: "stopped", DIVERGED: "diverged"}
