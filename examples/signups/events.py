"""The contract between the two services: the ``user.signed_up`` event and its payload model.

The signup service publishes :class:`SignedUp` instances (``Event(payload=model)`` stores them as
JSON); the welcome service's typed handler validates the payload back into the same model, and a
payload it refuses is dead-lettered at once with reason ``invalid_payload``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard import Event

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
"""A plausible address (one ``@``, a dot in the domain); a real service would also confirm it by mail."""

USER_AGGREGATE = "user"
"""The aggregate type: the events go to topic ``outbox.event.user`` (``topics.pattern``)."""

SIGNED_UP = "user.signed_up"


class SignedUp(BaseModel):
    """The payload of ``user.signed_up``."""

    model_config = ConfigDict(frozen=True)
    user_id: int = Field(gt=0)
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    name: str = Field(min_length=1, max_length=200)

    @property
    def domain(self) -> str:
        """The address's domain, lower case."""
        return self.email.rpartition("@")[2].lower()


def signed_up(user_id: int, email: str, name: str) -> Event:
    """The event of a new user, keyed by the user id: one user's events stay in order on one partition."""
    return Event(
        type=SIGNED_UP,
        key=f"user-{user_id}",
        aggregate_type=USER_AGGREGATE,
        payload=SignedUp(user_id=user_id, email=email, name=name),
    )
