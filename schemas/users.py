"""Users: registration, login, the current user, and its update."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Bio, Email, ImageUrl, Model, Password, Username


class NewUser(Model):
    username: Username
    email: Email
    password: Password


class NewUserRequest(Model):
    user: NewUser


class LoginUser(Model):
    email: Email
    password: Password


class LoginUserRequest(Model):
    user: LoginUser


class UpdateUser(Model):
    email: Email | None = None
    username: Username | None = None
    password: Password | None = None
    bio: Bio | None = None
    image: ImageUrl | None = None


class UpdateUserRequest(Model):
    user: UpdateUser


class User(Model):
    email: str
    token: str
    username: str
    bio: str
    image: str | None = Field(None)


class UserResponse(Model):
    user: User
