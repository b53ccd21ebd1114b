"""The simulated world: ground truth and emulators that speak the real wire protocols."""
