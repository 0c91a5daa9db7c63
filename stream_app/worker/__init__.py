"""The I/O shell of the stream app: a Faust worker around the pure core and the sink."""
