"""The toolbox verbs' option values and defaults, in a module without numpy, onnx or PIL, so that
the command line's parser reads them cheaply."""

#: How tiles are scaled: one range for the whole layer, or each channel its own.
SCALES = ("shared", "tile")
#: Default share of photos on which a dead channel is zero (more than this).
THRESHOLD = 0.99
#: ``--layer`` value naming each Conv's output, after the per-channel ops and the ReLU or Clip
#: that directly follow it when they do (where a filter's "zero" is read).
ALL_CONV = "all-conv"
#: Filters and input channels shown of a grey grid by default.
FIRST = 16
#: How a channel's map is scored: its largest cell (the unit at its best position) or its mean.
SCORES = ("max", "mean")
DEFAULT_K = 9
DEFAULT_PERPLEXITY = 30.0
#: The default t-SNE grid is the smallest square with a cell per photo, at most this many cells a side.
DEFAULT_MAX_SIDE = 32
#: The largest t-SNE grid (the assignment's cost matrix has side^2 x photos entries).
MAX_SIDE = 50
DEFAULT_THUMB = 48
