"""Many runs: sweep files and their runners (a local pool or Slurm), reports over run folders,
studies built on them."""
