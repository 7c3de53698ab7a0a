"""Who is calling: staff users with roles, rider accounts, session tokens, API keys, login limits.

Passwords are scrypt hashes (swapd.security). Bearer secrets are 256-bit random and stored as
SHA-256 only, so a stolen database holds no usable credential. Login attempts are counted in the
database, per account and per client address, so every server process enforces the same limit.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite

from swapd.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from swapd.domain.packs import validate_code
from swapd.domain.riders import RiderStatus
from swapd.security import Busy, PasswordGate, hash_password
from swapd.store import schema as t
from swapd.store.database import Database, Tx

log = structlog.get_logger(__name__)

SESSION_TTL_S = 12 * 3600
RIDER_SESSION_TTL_S = 30 * 24 * 3600  # riders stay signed in on their phone
LOGIN_WINDOW_S = 15 * 60
LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
LOGIN_MAX_FAILURES_PER_CLIENT = 30
PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 200
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}$")
# Checked against when the account does not exist, so that a login for an unknown address costs
# the same time as a wrong password and does not reveal which addresses have accounts.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
# Sign-ins and sign-ups of one process: two scrypt runs at once (a core each on a small server),
# sixteen requests inside at most; the HTTP server's other routes keep the rest of its threads.
PASSWORD_CHECKS = PasswordGate(running=2, admitted=16)
_BUSY = "too many sign-ins at once; try again in 1 s"


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything, including refunds, adjustments and users
    OPERATOR = "operator"  # runs the network: stations, packs, plans, riders
    SUPPORT = "support"  # reads everything, changes nothing
    RIDER = "rider"  # their own account only


STAFF_ROLES = frozenset({Role.ADMIN, Role.OPERATOR, Role.SUPPORT})


class TokenKind(enum.StrEnum):
    SESSION = "session"
    API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: Role
    rider_id: str | None
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    user_id: str
    email: str
    role: Role
    rider_id: str | None
    token_id: str
    via: TokenKind

    @property
    def actor(self) -> str:
        """How this caller is named in the ledger and the audit log."""
        return f"user:{self.email}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new secret: shown to its owner once, never stored in the clear."""

    id: str
    token: str
    kind: TokenKind
    name: str
    expires_at: datetime | None
    user: User


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_email(email: object) -> str:
    if not isinstance(email, str) or not _EMAIL_RE.fullmatch(email.strip()):
        raise InvalidInput(f"not an email address: {email!r}")
    return email.strip().lower()


def check_password(password: object) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise InvalidInput(f"password must be {PASSWORD_MIN_CHARS}-{PASSWORD_MAX_CHARS} characters long")
    return password


def _user(row: sa.Row[tuple[object, ...]]) -> User:
    m = row._mapping
    return User(
        id=str(m["id"]),
        email=str(m["email"]),
        role=Role(str(m["role"])),
        rider_id=None if m["rider_id"] is None else str(m["rider_id"]),
        status=str(m["status"]),
        created_at=m["created_at"],
    )


def _user_by(tx: Tx, *where: sa.ColumnElement[bool]) -> tuple[User, str] | None:
    row = tx.repo.execute(sa.select(t.users).where(*where)).first()
    return None if row is None else (_user(row), str(row.password_hash))


def _insert_user(tx: Tx, email: str, password_hash: str, role: Role, rider_id: str | None) -> User:
    if _user_by(tx, t.users.c.email == email) is not None:
        raise Conflict(f"an account for {email} exists already")
    user = User(f"usr_{secrets.token_hex(8)}", email, role, rider_id, "active", tx.now)
    tx.repo.execute(
        sa.insert(t.users).values(
            id=user.id,
            email=email,
            password_hash=password_hash,
            role=role.value,
            rider_id=rider_id,
            status=user.status,
            created_at=tx.now,
        )
    )
    return user


def add_staff(db: Database, email: str, password: str, role: Role) -> User:
    """A staff account (admin, operator, support); ``swapd user add`` makes the first admin."""
    email = normalise_email(email)
    password_hash = hash_password(check_password(password))
    if role not in STAFF_ROLES:
        raise InvalidInput(f"staff role must be one of admin, operator, support, got {role!r}")
    return db.write(lambda tx: _insert_user(tx, email, password_hash, role, None))


def sign_up_rider(
    db: Database, email: str, password: str, plan_id: str, *, vehicle_packs: int = 1
) -> User:
    """A rider account and its rider, in one transaction: no rider without a login or vice versa."""
    email = normalise_email(email)
    try:
        with PASSWORD_CHECKS.admit():
            password_hash = PASSWORD_CHECKS.hash(check_password(password))
    except Busy:
        raise RateLimited(_BUSY, 1) from None
    validate_code(plan_id, "plan")
    if isinstance(vehicle_packs, bool) or not isinstance(vehicle_packs, int):
        raise InvalidInput("vehicle_packs must be an integer")
    if not 1 <= vehicle_packs <= 8:
        raise InvalidInput(f"vehicle_packs must be 1..8, got {vehicle_packs}")

    def work(tx: Tx) -> User:
        plan = tx.repo.plan(plan_id)
        if plan is None or not plan.listed:  # an unlisted plan is not there for the public
            raise NotFound(f"unknown plan {plan_id}")
        rider_id = f"r-{secrets.token_hex(6)}"
        tx.repo.execute(
            sa.insert(t.riders).values(
                id=rider_id,
                plan_id=plan_id,
                status=RiderStatus.ACTIVE.value,
                vehicle_packs=vehicle_packs,
                created_at=tx.now,
            )
        )
        return _insert_user(tx, email, password_hash, Role.RIDER, rider_id)

    return db.write(work)


def _issue(tx: Tx, user: User, kind: TokenKind, name: str, ttl_s: int | None) -> IssuedToken:
    token_id = f"tok_{secrets.token_hex(8)}"
    prefix = "swk" if kind is TokenKind.API_KEY else "sws"
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    expires_at = None if ttl_s is None else tx.now + timedelta(seconds=ttl_s)
    tx.repo.execute(
        sa.insert(t.api_tokens).values(
            id=token_id,
            secret_sha256=_sha256(secret),
            user_id=user.id,
            kind=kind.value,
            name=name,
            created_at=tx.now,
            expires_at=expires_at,
        )
    )
    return IssuedToken(token_id, secret, kind, name, expires_at, user)


def _reserve(tx: Tx, key: str, limit: int) -> int | None:
    """Count one attempt against ``key`` unless ``limit`` attempts are counted in its window
    already: None when counted, else the seconds until the window ends.

    One statement, so that it is atomic on both databases: PostgreSQL takes the row's lock for
    the upsert and re-checks the condition on the newest row; SQLite runs one writer at a time.
    A read followed by a write would let parallel attempts all read "under the limit".
    """
    c = t.rate_limits.c
    now = sa.bindparam("now", tx.now, type_=c.window_start.type)
    ended = c.window_start <= tx.now - timedelta(seconds=LOGIN_WINDOW_S)
    dialect = sqlite if tx.repo.conn.dialect.name == "sqlite" else postgresql
    upsert = dialect.insert(t.rate_limits).values(key=key, window_start=now, count=1)
    counted = tx.repo.execute(
        upsert.on_conflict_do_update(
            index_elements=[c.key],
            set_={
                "window_start": sa.case((ended, now), else_=c.window_start),
                "count": sa.case((ended, 1), else_=c.count + 1),
            },
            where=sa.or_(ended, c.count < limit),
        ).returning(c.count)
    ).first()
    if counted is not None:
        return None
    window_start: datetime = tx.repo.execute(sa.select(c.window_start).where(c.key == key)).scalar_one()
    remaining_s = LOGIN_WINDOW_S - (tx.now - window_start).total_seconds()
    return max(1, math.ceil(remaining_s))


def forget_ended_login_windows(db: Database) -> int:
    """Delete the login counters whose window has ended; how many. ``_reserve`` restarts such a
    row at 1 anyway, so this changes no limit; it keeps the table as small as the set of keys
    tried in the last window."""

    def work(tx: Tx) -> int:
        ended = t.rate_limits.c.window_start <= tx.now - timedelta(seconds=LOGIN_WINDOW_S)
        return int(tx.repo.execute(sa.delete(t.rate_limits).where(ended)).rowcount)

    return db.write(work)


def _release(tx: Tx, key: str, counted_at: datetime) -> None:
    """Take back the attempt counted at ``counted_at``, unless its window has ended since."""
    c = t.rate_limits.c
    tx.repo.execute(
        sa.update(t.rate_limits)
        .where(c.key == key, c.window_start <= counted_at, c.count > 0)
        .values(count=c.count - 1)
    )


def login(db: Database, email: str, password: str, *, client: str) -> IssuedToken:
    """A session token for a right password; after too many failures the account (and the client
    address) gets RateLimited for the rest of the window, whatever the password.

    Each attempt is counted before its password is checked and stays counted if it fails; a
    success takes back its own count. So no more attempts than the limit are ever checked in a
    window, however many arrive at once and at however many server processes.
    """
    if not isinstance(email, str) or not isinstance(password, str):
        raise Unauthenticated("wrong email or password")
    email = email.strip().lower()
    try:
        with PASSWORD_CHECKS.admit():
            return _login(db, email, password, client)
    except Busy:
        log.warning("login_shed", email=email, client=client)
        raise RateLimited(_BUSY, 1) from None


def _login(db: Database, email: str, password: str, client: str) -> IssuedToken:
    keys = (
        (f"login:account:{email}", LOGIN_MAX_FAILURES_PER_ACCOUNT),
        (f"login:client:{client}", LOGIN_MAX_FAILURES_PER_CLIENT),
    )

    def count_attempt(tx: Tx) -> tuple[tuple[User, str] | None, datetime]:
        for key, limit in keys:
            wait_s = _reserve(tx, key, limit)
            if wait_s is not None:  # raising rolls back the other key's count too
                raise RateLimited(f"too many failed logins; try again in {wait_s} s", wait_s)
        return _user_by(tx, t.users.c.email == email), tx.now

    try:
        found, counted_at = db.write(count_attempt)
    except RateLimited:
        log.warning("login_rate_limited", email=email, client=client)
        raise
    # The slow hash runs outside any transaction, and for unknown accounts too (same timing).
    good = PASSWORD_CHECKS.verify(password[:PASSWORD_MAX_CHARS], found[1] if found else _DUMMY_HASH)
    if found is None or not good or found[0].status != "active":
        log.warning("login_failed", email=email, client=client)
        raise Unauthenticated("wrong email or password")
    user = found[0]

    def work(tx: Tx) -> IssuedToken:
        for key, _limit in keys:
            _release(tx, key, counted_at)
        ttl_s = RIDER_SESSION_TTL_S if user.role is Role.RIDER else SESSION_TTL_S
        return _issue(tx, user, TokenKind.SESSION, "login", ttl_s)

    return db.write(work)


def authenticate(db: Database, token: str) -> Principal:
    if not token or len(token) > 200:
        raise Unauthenticated("missing or malformed bearer token")

    def work(tx: Tx) -> Principal:
        row = tx.repo.execute(
            sa.select(
                t.api_tokens.c.id.label("token_id"),
                t.api_tokens.c.kind,
                t.api_tokens.c.expires_at,
                t.api_tokens.c.revoked_at,
                t.users,
            )
            .join(t.users, t.users.c.id == t.api_tokens.c.user_id)
            .where(t.api_tokens.c.secret_sha256 == _sha256(token))
        ).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked token")
        if row.expires_at is not None and row.expires_at <= tx.now:
            raise Unauthenticated("token expired; sign in again")
        if row.status != "active":
            raise Unauthenticated("account disabled")
        user = _user(row)
        return Principal(
            user.id, user.email, user.role, user.rider_id, str(row.token_id), TokenKind(row.kind)
        )

    return db.read(work)


def revoke(db: Database, token_id: str, *, owner_id: str | None = None) -> None:
    """Revoke a token; with ``owner_id``, only if it belongs to that user (logout, own keys)."""

    def work(tx: Tx) -> None:
        where = [t.api_tokens.c.id == token_id]
        if owner_id is not None:
            where.append(t.api_tokens.c.user_id == owner_id)
        row = tx.repo.execute(sa.select(t.api_tokens.c.revoked_at).where(*where)).first()
        if row is None:
            raise NotFound(f"unknown token {token_id}")
        if row.revoked_at is None:
            tx.repo.execute(sa.update(t.api_tokens).where(*where).values(revoked_at=tx.now))

    db.write(work)


def create_api_key(db: Database, user_id: str, name: str) -> IssuedToken:
    """A long-lived key for an integration, acting with its user's role."""
    if not isinstance(name, str) or not 1 <= len(name) <= 80 or not name.isprintable():
        raise InvalidInput("an API key needs a name of 1-80 printable characters")

    def work(tx: Tx) -> IssuedToken:
        found = _user_by(tx, t.users.c.id == user_id)
        if found is None:
            raise NotFound(f"unknown user {user_id}")
        if found[0].role not in STAFF_ROLES:
            raise Forbidden("API keys are for staff and integration accounts, not riders")
        return _issue(tx, found[0], TokenKind.API_KEY, name, None)

    return db.write(work)


@dataclass(frozen=True, slots=True)
class TokenLine:
    id: str
    kind: TokenKind
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def tokens_of(db: Database, user_id: str) -> list[TokenLine]:
    def work(tx: Tx) -> list[TokenLine]:
        rows = tx.repo.execute(
            sa.select(t.api_tokens)
            .where(t.api_tokens.c.user_id == user_id)
            .order_by(t.api_tokens.c.created_at, t.api_tokens.c.id)
        )
        return [
            TokenLine(r.id, TokenKind(r.kind), r.name, r.created_at, r.expires_at, r.revoked_at)
            for r in rows
        ]

    return db.read(work)


def users(db: Database) -> list[User]:
    return db.read(
        lambda tx: [_user(r) for r in tx.repo.execute(sa.select(t.users).order_by(t.users.c.email))]
    )


def user(db: Database, user_id: str) -> User:
    found = db.read(lambda tx: _user_by(tx, t.users.c.id == user_id))
    if found is None:
        raise NotFound(f"unknown user {user_id}")
    return found[0]


def user_by_email(db: Database, email: str) -> User:
    address = email.strip().lower()
    found = db.read(lambda tx: _user_by(tx, t.users.c.email == address))
    if found is None:
        raise NotFound(f"no account {email}")
    return found[0]


def update_staff(
    db: Database, user_id: str, *, role: Role | None = None, status: str | None = None
) -> User:
    """Change a staff account's role or status.

    There is always an active admin: the last one can be neither disabled nor demoted (Conflict).
    A change of role ends the account's sessions, and disabling it also revokes its API keys, for
    good: enabling it again revives none of them. (A key acts with its user's current role, so a
    role change leaves the keys of an integration working, with the new role.)
    """
    if status is not None and status not in ("active", "disabled"):
        raise InvalidInput(f"status must be active or disabled, got {status!r}")
    if role is not None and role not in STAFF_ROLES:
        raise InvalidInput("a staff role is admin, operator or support")

    def work(tx: Tx) -> User:
        # The active admins' rows first, locked in one order (PostgreSQL), then the account's:
        # of two admins removing each other at once, the second sees the first's change and is
        # refused. On SQLite a write transaction holds the whole database.
        admins = (
            tx.repo.execute(
                sa.select(t.users.c.id)
                .where(t.users.c.role == Role.ADMIN.value, t.users.c.status == "active")
                .order_by(t.users.c.id)
                .with_for_update()
            )
            .scalars()
            .all()
        )
        row = tx.repo.execute(
            sa.select(t.users).where(t.users.c.id == user_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"unknown user {user_id}")
        user = _user(row)
        if user.role is Role.RIDER:
            raise Conflict("rider accounts are managed through the rider (block/unblock)")
        new_role = user.role if role is None else role
        new_status = user.status if status is None else status
        stays_admin = new_role is Role.ADMIN and new_status == "active"
        if user.id in admins and not stays_admin and all(a == user.id for a in admins):
            raise Conflict(
                f"{user.email} is the last active admin: make another admin before "
                "disabling or demoting this one"
            )
        if (new_role, new_status) != (user.role, user.status):
            tx.repo.execute(
                sa.update(t.users)
                .where(t.users.c.id == user_id)
                .values(role=new_role.value, status=new_status)
            )
        ended = [TokenKind.SESSION.value]
        if new_status == "disabled":
            ended.append(TokenKind.API_KEY.value)
        if new_status == "disabled" or new_role is not user.role:
            tx.repo.execute(
                sa.update(t.api_tokens)
                .where(
                    t.api_tokens.c.user_id == user_id,
                    t.api_tokens.c.kind.in_(ended),
                    t.api_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=tx.now)
            )
        return User(user.id, user.email, new_role, user.rider_id, new_status, user.created_at)

    return db.write(work)
