"""The lab service's tables: served campaigns, users, their tokens, the audit log.

Tokens are random (:func:`secrets.token_urlsafe`) and kept only as their SHA-256 digest,
so the store never holds one that could be used; a token is shown once, when made.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, delete, select

from athanor.store.database import Store, StoreError, _get
from athanor.store.models import ApiToken, AuditEntry, ServedCampaign, User, utcnow

#: The roles, each allowed what the ones before it are.
ROLES = ("viewer", "operator", "admin")
TOKEN_PREFIX = "ath_"


def digest(token: str) -> str:
    """The SHA-256 digest a token is kept as."""
    return hashlib.sha256(token.encode()).hexdigest()


class ServiceRecords:
    """What the lab service keeps in ``store`` besides the campaigns themselves."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------- served campaigns

    def serve(self, name: str, submitted_by: str, priority: int = 0) -> ServedCampaign:
        """Record that the service runs campaign ``name`` (already in the store)."""
        served = ServedCampaign(name=name, submitted_by=submitted_by, priority=priority)
        with self.store.transaction() as session:
            session.add(served)
        return served

    def served(self) -> list[ServedCampaign]:
        with self.store.transaction() as session:
            query = select(ServedCampaign).order_by(col(ServedCampaign.submitted_at))
            return list(session.exec(query).all())

    def update_served(self, name: str, **fields: Any) -> ServedCampaign:
        """Set ``wanted`` or ``priority`` of a served campaign in one transaction."""
        with self.store.transaction() as session:
            served = _get(session, ServedCampaign, name)
            for key, value in fields.items():
                setattr(served, key, value)
            session.add(served)
            return served

    # ------------------------------------------------------------- users and tokens

    def add_user(self, name: str, role: str) -> User:
        """A new user; StoreError when the name is taken or the role unknown."""
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not a role; allowed: {', '.join(ROLES)}")
        with self.store.transaction() as session:
            if session.get(User, name) is not None:
                raise StoreError(f"a user named {name!r} exists already")
            user = User(name=name, role=role)
            session.add(user)
            return user

    def users(self) -> list[User]:
        with self.store.transaction() as session:
            return list(session.exec(select(User).order_by(col(User.name))).all())

    def delete_user(self, name: str) -> None:
        """Remove a user and every token of theirs (their audit entries stay)."""
        with self.store.transaction() as session:
            user = _get(session, User, name)
            session.exec(delete(ApiToken).where(col(ApiToken.user) == name))
            session.delete(user)

    def new_token(
        self, user: str, label: str = "", expires_at: datetime | None = None
    ) -> tuple[str, ApiToken]:
        """A new token for ``user``: (the token, shown only now; its stored record)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(user=user, digest=digest(token), label=label, expires_at=expires_at)
        with self.store.transaction() as session:
            _get(session, User, user)
            session.add(record)
        return token, record

    def holder(self, token: str) -> tuple[User, ApiToken] | None:
        """The user a token belongs to, and its record (None when it is unknown)."""
        with self.store.transaction() as session:
            query = select(ApiToken).where(ApiToken.digest == digest(token))
            record = session.exec(query).first()
            user = None if record is None else session.get(User, record.user)
            return None if record is None or user is None else (user, record)

    def has_admin(self) -> bool:
        with self.store.transaction() as session:
            return session.exec(select(User).where(User.role == "admin")).first() is not None

    # ------------------------------------------------------------- audit

    def audit(
        self, user: str, action: str, client: str, status: int, detail: dict[str, Any]
    ) -> None:
        with self.store.transaction() as session:
            session.add(
                AuditEntry(user=user, action=action, client=client, status=status, detail=detail)
            )

    def audit_log(self, limit: int = 1000) -> list[AuditEntry]:
        """The latest entries, newest first."""
        with self.store.transaction() as session:
            query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
            return list(session.exec(query).all())


def expired(record: ApiToken, now: datetime | None = None) -> bool:
    """Whether a token's time is up."""
    if record.expires_at is None:
        return False
    expires = record.expires_at
    if expires.tzinfo is None:  # SQLite gives naive datetimes back (they are UTC)
        expires = expires.replace(tzinfo=UTC)
    return expires <= (now or utcnow())
