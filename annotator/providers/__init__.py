"""Crowd markets behind one interface: the `link` provider (any market that opens a URL) and `mturk`."""
