"""One run: its config and presets, the round loop (ns-3, the scheduler, the learner), the
protocol's steps, the rate calibration, checkpoints, the run folder and its plots."""
