"""The store: the campaign layer and every raw Bluesky document, in one database.

SQLite file by default; any SQLAlchemy URL (``postgresql://...``) works the same way.
"""

from athanor.store.database import Store, StoreError, TransitionError
from athanor.store.models import (
    Campaign,
    Document,
    Experiment,
    ExperimentState,
    Outcome,
    Proposal,
    Run,
    Sample,
    SampleMove,
    StateChange,
)

__all__ = [
    "Campaign",
    "Document",
    "Experiment",
    "ExperimentState",
    "Outcome",
    "Proposal",
    "Run",
    "Sample",
    "SampleMove",
    "StateChange",
    "Store",
    "StoreError",
    "TransitionError",
]
