"""API tokens: made once, shown once, stored only as a hash.

A token reads `lb_<id>_<secret>`. The id finds the row; the secret's SHA-256 is then
compared with the stored one in constant time, so neither a guess nor the timing of
a wrong answer tells anything about a real token. Secrets are 192 random bits, so a
plain hash is enough: there is nothing to brute-force the way a password is.
"""

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from linkbroker import database
from linkbroker.errors import InvalidToken, LinkbrokerError, TokenNotFound

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"lb_([0-9a-f]{12})_([A-Za-z0-9_-]{32})")
_NOBODY = hashlib.sha256(b"no such token").hexdigest()
# A token's last use is written at most this often, not on every request.
TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the secret itself."""

    name: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class TokenStore:
    """The tokens table."""

    def __init__(self, db_path: Path, *, autocheckpoint: bool = True) -> None:
        self.conn = database.connect(db_path, autocheckpoint=autocheckpoint)
        self._touched: dict[str, float] = {}

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def create(self, name: str) -> str:
        """Make a token called `name` and return it; it cannot be shown again."""
        if _NAME.fullmatch(name) is None:
            raise LinkbrokerError(
                f"The token name {name!r} is not allowed; use 1 to 64 letters, digits, "
                "'_', '.' or '-', starting with a letter or digit.",
                name,
            )
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
        try:
            self.conn.execute(
                "INSERT INTO tokens (name, token_id, secret_hash) VALUES (?, ?, ?)",
                (name, token_id, _hash(secret)),
            )
        except sqlite3.IntegrityError as exc:
            raise LinkbrokerError(
                f"A token named {name!r} already exists (revoked tokens keep their "
                "names); choose another name.",
                name,
            ) from exc
        return f"lb_{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        """Return every token, newest first, revoked ones included."""
        rows = self.conn.execute(
            "SELECT name, created_at, last_used_at, revoked_at FROM tokens "
            "ORDER BY created_at DESC, rowid DESC"
        )
        return [TokenInfo(*row) for row in rows]

    def revoke(self, name: str) -> None:
        """Revoke the token `name`; every worker refuses it from the next request."""
        revoked = self.conn.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, CURRENT_TIMESTAMP) "
            "WHERE name = ?",
            (name,),
        ).rowcount
        if not revoked:
            raise TokenNotFound(
                f"No token is named {name!r}; run `linkbroker token list` to see them.",
                name,
            )

    def verify(self, token: str) -> str:
        """Return the name of the live token `token`; raise InvalidToken otherwise."""
        found = _TOKEN.fullmatch(token)
        token_id, secret = found.groups() if found else ("", "")
        row = self.conn.execute(
            "SELECT name, secret_hash FROM tokens "
            "WHERE token_id = ? AND revoked_at IS NULL",
            (token_id,),
        ).fetchone()
        name, expected = row if row else ("", _NOBODY)
        # Compared even when nothing matched, so that timing tells nothing.
        if not hmac.compare_digest(_hash(secret), expected) or not row:
            raise InvalidToken("The token is missing, wrong or revoked.", None)
        self._touch(name)
        return str(name)

    def _touch(self, name: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(name, -TOUCH_EVERY) < TOUCH_EVERY:
            return
        self._touched[name] = now
        self.conn.execute(
            "UPDATE tokens SET last_used_at = CURRENT_TIMESTAMP WHERE name = ?", (name,)
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
