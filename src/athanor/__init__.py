"""athanor: a self-driving laboratory for materials synthesis."""

__version__ = "0.1.0"
