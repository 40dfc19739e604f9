"""The ns-3 scenario as a Python object: its config, the simulation over shared memory (here) or
ZMQ (ns-3 on another host), CURVE keys for that link, and SUMO mobility traces."""
