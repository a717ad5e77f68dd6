"""The runtime: lifecycle, submit, the sync pipe() facade and the event loop."""
