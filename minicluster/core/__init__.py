"""The core every other part builds on: the config model, the node layout, discovery
files, the log line format and the metric definitions. It imports nothing above it."""
