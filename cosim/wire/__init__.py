"""What crosses the process boundary between the learning loop and ns-3: the message layouts (the one
source of the C++ header), the plan's steps, the typed messages and the shared-memory bridge.
Imports nothing else of cosim."""
