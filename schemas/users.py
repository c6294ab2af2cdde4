"""Users: registration, login, the current user, and its update."""

from __future__ import annotations

from pydantic import MISSING

from schemas.base import Bio, Email, GivenPassword, ImageUrl, Model, Password, Username


class NewUser(Model):
    username: Username
    email: Email
    password: Password


class NewUserRequest(Model):
    user: NewUser


class LoginUser(Model):
    email: Email
    password: GivenPassword


class LoginUserRequest(Model):
    user: LoginUser


class UpdateUser(Model):
    """Only the fields sent change. email, username and password cannot be emptied (null or ""
    is 422); bio and image can: null or "" clears them (stored as null)."""

    email: Email | MISSING = MISSING
    username: Username | MISSING = MISSING
    password: Password | MISSING = MISSING
    bio: Bio | MISSING | None = MISSING
    image: ImageUrl | MISSING | None = MISSING


class UpdateUserRequest(Model):
    user: UpdateUser


class User(Model):
    email: str
    token: str
    username: str
    bio: str | None
    image: str | None


class UserResponse(Model):
    user: User
