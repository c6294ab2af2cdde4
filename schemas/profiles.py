"""Profiles as other users see them."""

from __future__ import annotations

from schemas.base import Model


class Profile(Model):
    username: str
    bio: str
    image: str | None
    following: bool


class ProfileResponse(Model):
    profile: Profile
