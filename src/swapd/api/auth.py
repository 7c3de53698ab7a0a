"""Sign-up, sign-in, the caller's own account, staff users and API keys."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Admin, Caller, Db, client_address
from swapd.api.errors import responses
from swapd.services import audit, identity
from swapd.services.identity import Role, TokenKind

router = APIRouter(tags=["identity"])


def _no_store(response: Response) -> None:
    """An answer that holds a secret (a session token, an API key) is kept by no cache."""
    response.headers["Cache-Control"] = "no-store"


class UserOut(BaseModel):
    id: str
    email: str
    role: Role
    rider_id: str | None
    status: str
    created_at: datetime

    @classmethod
    def of(cls, user: identity.User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            rider_id=user.rider_id,
            status=user.status,
            created_at=user.created_at,
        )


class TokenOut(BaseModel):
    """The secret is shown here once and never again."""

    token_id: str
    token: str
    kind: TokenKind
    name: str
    expires_at: datetime | None
    user: UserOut

    @classmethod
    def of(cls, issued: identity.IssuedToken) -> TokenOut:
        return cls(
            token_id=issued.id,
            token=issued.token,
            kind=issued.kind,
            name=issued.name,
            expires_at=issued.expires_at,
            user=UserOut.of(issued.user),
        )


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254, examples=["rider@example.com"])
    password: str = Field(max_length=identity.PASSWORD_MAX_CHARS)
    plan_id: str = Field(max_length=40, description="One of GET /api/v1/plans")
    vehicle_packs: int = Field(1, ge=1, le=8, description="How many packs the vehicle takes")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=1000)


class NewStaff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=identity.PASSWORD_MAX_CHARS)
    role: Role


class StaffChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    status: str | None = Field(None, pattern="^(active|disabled)$")


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)


class TokenLineOut(BaseModel):
    id: str
    kind: TokenKind
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    responses=responses(404, 409, 422, 429),
    summary="Create a rider account (and its rider) and sign in",
)
def sign_up(body: SignUp, db: Db, request: Request, response: Response) -> TokenOut:
    identity.sign_up_rider(db, body.email, body.password, body.plan_id, vehicle_packs=body.vehicle_packs)
    _no_store(response)
    return TokenOut.of(identity.login(db, body.email, body.password, client=client_address(request)))


@router.post("/auth/login", responses=responses(401, 429), summary="Sign in: a session token")
def log_in(body: Login, db: Db, request: Request, response: Response) -> TokenOut:
    _no_store(response)
    return TokenOut.of(identity.login(db, body.email, body.password, client=client_address(request)))


@router.post(
    "/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401), summary="Sign out"
)
def log_out(caller: Caller, db: Db) -> None:
    identity.revoke(db, caller.token_id, owner_id=caller.user_id)


@router.get("/me", responses=responses(401), summary="The signed-in account")
def me(caller: Caller, db: Db) -> UserOut:
    return UserOut.of(identity.user(db, caller.user_id))


@router.get("/users", responses=responses(401, 403), summary="Staff and rider accounts (admin)")
def list_users(_caller: Admin, db: Db) -> list[UserOut]:
    return [UserOut.of(u) for u in identity.users(db)]


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
    summary="Add a staff account (admin)",
)
def add_staff(body: NewStaff, caller: Admin, db: Db) -> UserOut:
    user = identity.add_staff(db, body.email, body.password, body.role)
    db.write(
        lambda tx: audit.record(
            tx, caller.actor, "user.add", user.id, "staff account", {"role": user.role.value}
        )
    )
    return UserOut.of(user)


@router.patch(
    "/users/{user_id}",
    responses=responses(401, 403, 404, 409, 422),
    summary="Change a staff account's role or disable it (admin)",
)
def change_staff(user_id: str, body: StaffChange, caller: Admin, db: Db) -> UserOut:
    """A change of role ends the account's sessions; disabling it also revokes its API keys.
    Neither comes back when the account is enabled again. The last active admin can be neither
    disabled nor demoted (409)."""
    user = identity.update_staff(db, user_id, role=body.role, status=body.status)
    detail = body.model_dump(mode="json", exclude_none=True)
    db.write(lambda tx: audit.record(tx, caller.actor, "user.change", user_id, "staff change", detail))
    return UserOut.of(user)


@router.get(
    "/users/{user_id}/api-keys",
    responses=responses(401, 403, 404),
    summary="A user's tokens and API keys, without secrets (admin)",
)
def list_keys(user_id: str, _caller: Admin, db: Db) -> list[TokenLineOut]:
    identity.user(db, user_id)
    return [
        TokenLineOut(
            id=k.id,
            kind=k.kind,
            name=k.name,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
        )
        for k in identity.tokens_of(db, user_id)
    ]


@router.post(
    "/users/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 404, 422),
    summary="Create an API key for an integration account (admin); the key is shown once",
)
def create_key(user_id: str, body: NewApiKey, caller: Admin, db: Db, response: Response) -> TokenOut:
    issued = identity.create_api_key(db, user_id, body.name)
    db.write(
        lambda tx: audit.record(
            tx, caller.actor, "api_key.create", user_id, body.name, {"token_id": issued.id}
        )
    )
    _no_store(response)
    return TokenOut.of(issued)


@router.delete(
    "/users/{user_id}/api-keys/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Revoke a token or API key (admin)",
)
def revoke_key(user_id: str, token_id: str, caller: Admin, db: Db) -> None:
    identity.revoke(db, token_id, owner_id=user_id)
    db.write(
        lambda tx: audit.record(
            tx, caller.actor, "api_key.revoke", user_id, "revoked", {"token_id": token_id}
        )
    )
