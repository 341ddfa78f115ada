"""Test-session settings."""

import torch as th

# The suite's networks are tiny: one thread each is faster than two fighting over the 2 cores CI has.
th.set_num_threads(1)
