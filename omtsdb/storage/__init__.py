"""Storage seams: the Protocols every reader and writer meets (see ``interface``)."""
