"""Talking to Label Studio: its API token, and fetching what a task points at.

Label Studio 1.23 hands out Personal Access Tokens (JWT refresh tokens,
exchanged at ``POST /api/token/refresh/`` for a short-lived access token) and
disables legacy tokens by default; both kinds work here: a legacy token is
sent as ``Authorization: Token ...``, a PAT is exchanged for an access token
sent as ``Bearer``, refreshed before it expires and again when Label Studio
answers 401.

**The token goes to Label Studio's own origin only** (scheme, host and port
of ``LABEL_STUDIO_URL``): a task may point at any URL, and a redirect (a
presigned S3 link) leaves the origin; those requests carry no token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import httpx

from annot.errors import AnnotError

REFRESH_MARGIN_S = 30  # refresh an access token this long before it expires
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_REDIRECTS = 3


class FetchError(Exception):
    """An image a task points at could not be fetched (the reason is the message)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: Label Studio verifies it), or None."""
    try:
        payload = token.split(".")[1]
        return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def is_personal_access_token(token: str) -> bool:
    return token.count(".") == 2 and _jwt_expiry(token) is not None


@dataclass
class Fetched:
    data: bytes
    etag: str | None


class LabelStudioClient:
    """Label Studio at ``url`` with ``token`` (legacy or PAT); thread-safe."""

    def __init__(self, url: str | None, token: str | None, http: httpx.Client | None = None):
        self.url = url.rstrip("/") + "/" if url else None
        self.token = token
        self._http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._lock = threading.Lock()
        self._access: str | None = None
        self._access_expiry = 0.0

    # -- the token ----------------------------------------------------------------

    def owns(self, url: str) -> bool:
        """Whether ``url`` is on Label Studio's own origin (the only place the token goes)."""
        return self.url is not None and _origin(url) == _origin(self.url)

    def _auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        if not self.token:
            return {}
        if not is_personal_access_token(self.token):
            return {"Authorization": f"Token {self.token}"}
        with self._lock:
            if force_refresh or self._access is None or time.time() > self._access_expiry - REFRESH_MARGIN_S:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> None:
        try:
            r = self._http.post(urljoin(self.url, "api/token/refresh/"), json={"refresh": self.token})
        except httpx.HTTPError as e:
            raise FetchError(f"cannot reach Label Studio at {self.url} to refresh the access token: {e}") from None
        if r.status_code == 404:
            raise FetchError(f"no Label Studio API at LABEL_STUDIO_URL {self.url} (HTTP 404 from api/token/refresh/): "
                             "give the server's root URL, e.g. http://localhost:8080")
        if r.status_code != 200 or "access" not in (r.json() if r.content else {}):
            raise FetchError(f"Label Studio refused the personal access token (HTTP {r.status_code} from "
                             "/api/token/refresh/): is LABEL_STUDIO_API_KEY current?")
        self._access = r.json()["access"]
        self._access_expiry = _jwt_expiry(self._access) or (time.time() + 60)

    # -- fetching -------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """An absolute URL for a task's reference (``/data/upload/...`` is relative to Label Studio)."""
        if urlsplit(ref).scheme in ("http", "https"):
            return ref
        if self.url is None:
            raise FetchError(f"{ref!r} is a Label Studio path, but LABEL_STUDIO_URL is not set")
        return urljoin(self.url, ref.lstrip("/"))

    def storage_url(self, uri: str, task_id: int | None) -> str:
        """Label Studio's resolve endpoint for a cloud-storage URI (``s3://``, ``gs://``,
        ``azure-blob://``): it redirects to a presigned URL or streams the object."""
        if self.url is None or task_id is None:
            raise FetchError(f"{uri!r} needs Label Studio to presign it: set LABEL_STUDIO_URL (and the task id)")
        encoded = base64.urlsafe_b64encode(uri.encode()).decode()
        return urljoin(self.url, f"tasks/{int(task_id)}/resolve/?fileuri={quote(encoded)}")

    def fetch(self, url: str, etag: str | None = None) -> Fetched | None:
        """``url``'s bytes (None: not modified since ``etag``). The token goes
        only to Label Studio's origin; redirects are followed by hand so a
        presigned link on another host never sees it."""
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"If-None-Match": etag} if etag else {}
            own = self.owns(url)
            if own:
                headers.update(self._auth_header())
            try:
                r = self._http.get(url, headers=headers)
                if r.status_code == 401 and own and self.token and is_personal_access_token(self.token):
                    r = self._http.get(url, headers={**headers, **self._auth_header(force_refresh=True)})
            except httpx.HTTPError as e:
                raise FetchError(f"cannot fetch {url}: {e}") from None
            if r.status_code in (301, 302, 303, 307, 308) and "location" in r.headers:
                url, etag = urljoin(url, r.headers["location"]), None
                continue
            if r.status_code == 304:
                return None
            if r.status_code != 200:
                hint = (": Label Studio refused LABEL_STUDIO_API_KEY" if own and r.status_code in (401, 403)
                        else "")
                raise FetchError(f"cannot fetch {url}: HTTP {r.status_code}{hint}")
            return Fetched(r.content, r.headers.get("etag"))
        raise FetchError(f"cannot fetch {url}: more than {MAX_REDIRECTS} redirects")

    def check_access(self) -> str | None:
        """Whether Label Studio answers at its URL and takes the token (one
        request, at start-up): None, or what is wrong, in one line."""
        if self.url is None:
            return None
        url = urljoin(self.url, "api/current-user/whoami")
        try:
            r = self._http.get(url, headers=self._auth_header())
        except FetchError as e:
            return str(e)
        except httpx.HTTPError as e:
            return f"cannot reach Label Studio at {self.url}: {e} (task images from it fail until it answers)"
        if r.status_code == 404:
            return (f"no Label Studio API at LABEL_STUDIO_URL {self.url} (HTTP 404 from api/current-user/whoami): "
                    "give the server's root URL, e.g. http://localhost:8080")
        if r.status_code in (401, 403):
            what = "refused LABEL_STUDIO_API_KEY" if self.token else "needs a token: LABEL_STUDIO_API_KEY is not set"
            return (f"Label Studio at {self.url} {what} (HTTP {r.status_code}): use a personal access token "
                    "(Account & Settings), or a legacy token where the organisation enables them")
        if r.status_code != 200:
            return f"Label Studio at {self.url} answered HTTP {r.status_code} to api/current-user/whoami"
        return None

    def close(self) -> None:
        self._http.close()


def check_url(url: str | None) -> str | None:
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise AnnotError(f"LABEL_STUDIO_URL {url!r}: expected http(s)://host:port")
    return url
