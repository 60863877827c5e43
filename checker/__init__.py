"""The checker: invariants' runner, lockstep fuzzing, /proc snapshot and live-kernel checks,
and the ``mmspec`` command line."""
