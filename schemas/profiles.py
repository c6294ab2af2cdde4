"""Profiles as other users see them."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Model, Username


class ProfilePath(Model):
    username: Username = Field(description="the user's username")


class Profile(Model):
    username: str
    bio: str | None
    image: str | None
    following: bool


class ProfileResponse(Model):
    profile: Profile
