"""Wiring and running: the Faust worker, the embedded stack, child processes, and the probes
that watch a running worker from outside."""
