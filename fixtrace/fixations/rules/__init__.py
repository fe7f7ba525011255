"""One module per op family; importing this package registers every rule."""

from fixtrace.fixations.rules import conv, dense, merge, passthrough, pool, shape  # noqa: F401
