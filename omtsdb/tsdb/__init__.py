"""The time-series database: head (numpy buffers), WAL, postings index, blocks."""
