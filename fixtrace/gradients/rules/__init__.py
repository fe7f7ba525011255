"""Importing this package registers every gradient rule."""

from fixtrace.gradients.rules import activation, conv, dense, elementwise, normalization, pool, shape, softmax  # noqa: F401
