"""Secrets out of everything prefclean stores or prints, at one choke point.

A judge server may echo the request's Authorization header in an error body, and a URL may carry
`user:password@`: engine errors become strings (EngineError), and URLs are shown (engine descriptions),
only through `redact()`. It replaces every secret the process knows: the API keys read from the environment
for any judge, the Hugging Face token (HF_TOKEN or the saved login), Argilla's key, the passwords in URLs
(and their Basic-auth form), and anything that looks like a bearer token or URL userinfo.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from urllib.parse import unquote, urlsplit

MASK = "[REDACTED]"
MIN_SECRET = 6  # shorter values would mask ordinary words; the patterns below still catch them in context
ENV_SECRETS = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "ARGILLA_API_KEY")
ENV_URLS = ("HF_ENDPOINT", "ARGILLA_API_URL")

USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
BEARER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=\-]{8,})", re.I)


class Redactor:
    """The secrets in use (values only ever added) and the function that masks them."""

    def __init__(self):
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Remember a secret value (too short ones are left to the patterns)."""
        if not secret or len(secret) < MIN_SECRET:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))  # longest first

    def add_url(self, url: str | None) -> None:
        """The password of a URL's `user:password@`, as written and as the Basic-auth header sends it."""
        if not url or "@" not in url:
            return
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.password:
            self.add(parts.password)
            self.add(unquote(parts.password))
            credentials = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
            self.add(base64.b64encode(credentials.encode()).decode())

    def add_environment(self, judges=()) -> None:
        """Every secret the environment holds for this process: the well-known variables, the key variable
        each judge names, the saved Hugging Face login, and the passwords in judge and service URLs."""
        for name in ENV_SECRETS:
            self.add(os.environ.get(name))
        for name in ENV_URLS:
            self.add_url(os.environ.get(name))
        for judge in judges:
            if judge.api_key_env:
                self.add(os.environ.get(judge.api_key_env))
            for url in judge.base_urls:
                self.add_url(url)
        self.add(_saved_hf_token())

    def known(self, text):
        """`text` with the known secret values masked, not the patterns: for a judge's answer, which may
        well speak of "Bearer tokens" (a few microseconds per answer)."""
        if not isinstance(text, str) or not text:
            return text
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __call__(self, text):
        """`text` with every known secret and anything shaped like a credential masked (None and
        non-strings pass through)."""
        text = self.known(text)
        if not isinstance(text, str) or not text:
            return text
        if "@" in text and "://" in text:
            text = USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
        if " " in text:
            text = BEARER.sub(lambda m: f"{m['kind']} {MASK}", text)
        return text


def _saved_hf_token() -> str | None:
    """The token `hf auth login` saved (read from its file; huggingface_hub is not imported for this)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                      os.path.expanduser("~/.cache"), "huggingface")
    path = os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


REDACTOR = Redactor()
REDACTOR.add_environment()


def redact(text):
    """Mask every known secret in `text` (see Redactor)."""
    return REDACTOR(text)


def without_userinfo(url: str) -> str:
    """The URL with any `user:password@` removed (e.g. to name a server in a cache key)."""
    return USERINFO.sub(lambda m: m["scheme"], url)


def redact_known(text):
    """Mask the known secret values only (see Redactor.known)."""
    return REDACTOR.known(text)


def add_secret(secret: str | None) -> None:
    REDACTOR.add(secret)


def add_secrets_in_use(judges=()) -> None:
    """Called when judges start: the environment may have changed since import (tests, a long session)."""
    REDACTOR.add_environment(judges)
