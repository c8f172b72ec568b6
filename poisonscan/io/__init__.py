"""Chunked sources and atomic, streaming sinks."""
