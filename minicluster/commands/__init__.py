"""Sub-commands of the `minicluster` CLI, one module each."""
