"""Put on the bot's PYTHONPATH by `python -m bench --switch-interval S` (an experiment, not a setting).

Python imports `sitecustomize` at start-up; this one sets the interpreter's thread switch interval (how long
a thread may hold the GIL while another waits for it, 5 ms by default) to BENCH_SWITCH_INTERVAL seconds.
"""

import os
import sys

_interval = os.environ.get("BENCH_SWITCH_INTERVAL")
if _interval:
    sys.setswitchinterval(float(_interval))
