"""Wire-level instrument clients: no Bluesky, no ophyd, one module per instrument family."""
