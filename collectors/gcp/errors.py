"""Google API errors as one clear :class:`collectors.billing.CollectError` naming the call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from collectors.billing import CollectError

RENEW = "renew Application Default Credentials"


@contextmanager
def named(call: str) -> Iterator[None]:
    """Inside, a failing Google API call raises :class:`CollectError` that starts with ``call`` (e.g.
    ``"BigQuery jobs.insert"``) and says what to do about a refused credential."""
    try:
        yield
    except CollectError:
        raise
    except api_exceptions.Unauthorized as e:
        raise CollectError(f"{call} refused the credential (401: expired or invalid; {RENEW}): {e.message}") from None
    except auth_exceptions.GoogleAuthError as e:  # a 401 the transport could not cure by refreshing
        raise CollectError(f"{call} refused the credential (401: expired or invalid, and it could not be "
                           f"refreshed; {RENEW}): {e}") from None
    except api_exceptions.Forbidden as e:
        raise CollectError(f"{call} forbidden (403): {e.message}") from None
    except api_exceptions.RetryError as e:
        raise CollectError(f"{call} still failing after retries: {e.cause}") from None
    except api_exceptions.GoogleAPICallError as e:
        raise CollectError(f"{call} failed: {e.code} {e.message}") from None
    except (api_exceptions.GoogleAPIError, OSError) as e:
        raise CollectError(f"{call} failed: {e}") from None
