"""Settings for the whole test session."""

import os

from etcdrescue.model import DOWN_SETTLE_ENV

# The lab's kubelet stand-in polls its pod dir every 0.2 s, so one second of "still down" proves
# what five do against a real kubelet; every recovery the suite runs (CLI, wizard, rehearsal) reads it.
os.environ.setdefault(DOWN_SETTLE_ENV, "1")

# The awk fixtures (`awk_envs`, `env`) for every test that runs a script under each awk a master may have.
pytest_plugins = ["awk_shims"]
