"""The payment provider protocol: what billing needs from a card processor.

Every call carries an idempotency key that billing minted and stored before the call; a
provider must answer a repeated key with the first answer (Stripe and Adyen behave so). Errors:

* :class:`ProviderUnavailable`: the request was refused before anything happened (connection
  refused, 503); retrying with the same key is safe.
* :class:`ProviderTimeout`: no answer; the operation may or may not have happened. Retrying with
  the same key is safe and tells which.
* :class:`IdempotencyConflict`: the key was used before with a different request; a bug on our
  side, never retried.

A decline is not an exception: it is an answer (``status="declined"``) and is replayed as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["succeeded", "declined"]


@dataclass(frozen=True)
class ProviderResult:
    status: Status
    ref: str  # the provider's id of the authorization, payment or refund
    amount_minor: int
    ts_ns: int  # when the provider recorded it
    message: str = ""


class ProviderError(Exception):
    """A provider call that gave no answer."""


class ProviderUnavailable(ProviderError):
    """Refused before anything happened; safe to retry with the same key."""


class ProviderTimeout(ProviderError):
    """No answer in time; the operation may have happened. Retry with the same key."""


class IdempotencyConflict(ProviderError):
    """The key was already used for a different request."""


class PaymentProvider(Protocol):
    def authorize(
        self, key: str, *, account_id: str, amount_minor: int, currency: str, reference: str
    ) -> ProviderResult:
        """Place a hold of ``amount_minor`` on the account's payment method."""
        ...

    def capture(
        self, key: str, *, authorization: str, amount_minor: int, reference: str
    ) -> ProviderResult:
        """Capture up to the held amount; the rest of the hold is released."""
        ...

    def release(self, key: str, *, authorization: str, reference: str) -> ProviderResult:
        """Release an authorization that will not be captured."""
        ...

    def charge(
        self, key: str, *, account_id: str, amount_minor: int, currency: str, reference: str
    ) -> ProviderResult:
        """Charge without a hold (the part of a total above the hold, or no hold at all)."""
        ...

    def refund(
        self, key: str, *, payment: str, amount_minor: int, reference: str
    ) -> ProviderResult:
        """Refund part or all of a captured payment or charge."""
        ...
