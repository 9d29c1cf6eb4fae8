"""The control store: state that must survive a crash — the pointer, freezes, runs and chunks, probes, leases and
sync states."""
