"""Helpers shared by the application and its tests."""

from common.sharding import shard_bounds, sum_of_squares

__all__ = ["shard_bounds", "sum_of_squares"]
