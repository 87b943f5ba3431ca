"""One HTTP request with retries: the loop the OpenAI backend, KnowledgeQuery and the LLM annotator share.

    r = request("POST", url, json=body, retries=3, backoff=1.0, timeout=60)   # -> requests.Response

Connection errors, timeouts, HTTP 429 and 5xx are retried: before retry k the caller sleeps
`backoff * 2**(k-1)` seconds, or the server's numeric Retry-After when it sends one, capped at
`max_backoff`. Any other answer (200, 404, 401, ...) is returned as is: what it means is the caller's
business. After `retries` retries (so `retries + 1` attempts) HTTPRetryError says, in one line, what
went wrong last. lumos/model does not use this (hub.py resumes partial downloads, a different loop).
"""
import math
import time
from typing import Callable

import requests


class HTTPRetryError(RuntimeError):
    """Every attempt failed with a retryable cause. `cause` is the last one ('HTTP 503', 'ReadTimeout', ...);
    `status` its HTTP status, None when no answer came at all."""

    def __init__(self, url: str, cause: str, attempts: int, status: int | None = None):
        super().__init__(f"{url}: {cause}; gave up after {attempts} attempts")
        self.url, self.cause, self.attempts, self.status = url, cause, attempts, status


def retryable(status: int) -> bool:
    """Too many requests or a server-side failure: asking again later may work."""
    return status == 429 or status >= 500


def _retry_after(r: requests.Response) -> float | None:
    """The numeric Retry-After header in seconds; None when absent or an HTTP date (then we back off)."""
    try:
        s = float(r.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return s if math.isfinite(s) and s >= 0 else None


def request(method: str, url: str, *, session: requests.Session | None = None, retries: int = 3,
            backoff: float = 1.0, max_backoff: float | None = None, timeout: float = 60.0,
            sleep: Callable[[float], None] = time.sleep, before: Callable[[], None] | None = None,
            log: Callable[[str], None] | None = None, **requests_kwargs) -> requests.Response:
    """`requests.request(method, url, timeout=timeout, **requests_kwargs)` (or `session.request`), retried.

    `before()` runs before every attempt (a rate limiter, a request counter); `log(msg)` hears about
    each failed attempt that will be retried. Returns the first non-retryable response."""
    send = (session or requests).request
    attempts, cause, status, wait = max(retries, 0) + 1, "", None, 0.0
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(wait)
        if before is not None:
            before()
        wait = backoff * 2 ** (attempt - 1)  # the delay before the next attempt unless the server names one
        try:
            r = send(method, url, timeout=timeout, **requests_kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            cause, status = type(e).__name__, None
        else:
            if not retryable(r.status_code):
                return r
            cause, status = f"HTTP {r.status_code}", r.status_code
            if (named := _retry_after(r)) is not None:
                wait = named
            r.close()  # hand the connection back to the pool
        if max_backoff is not None:
            wait = min(wait, max_backoff)
        if log is not None and attempt < attempts:
            log(f"attempt {attempt}/{attempts}: {cause} from {url}; retrying in {wait:g} s")
    raise HTTPRetryError(url, cause, attempts, status)
