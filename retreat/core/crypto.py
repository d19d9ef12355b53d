"""Tokens and field encryption: random capability tokens stored as hashes, and clinical fields
encrypted at rest (Fernet keys from ``CLINICAL_DATA_KEYS``, newest first; old keys still decrypt).
``encrypted_text`` is the model attribute of a personal (non-clinical) text kept encrypted too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token(prefix: str = "rt") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


# --------------------------------------------------------------------------------------------
# Field encryption (clinical data at rest)
# --------------------------------------------------------------------------------------------


class FieldDecryptionError(RuntimeError):
    pass


def _dev_key(instance_dir: str) -> str:
    path = Path(instance_dir) / "field_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = Fernet.generate_key().decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
            return key
        except FileExistsError:
            pass
    return path.read_text().strip()


def field_cipher() -> MultiFernet:
    """MultiFernet over CLINICAL_DATA_KEYS (newest first). Old keys still decrypt.

    FIELD_ENCRYPTION_KEYS is accepted as the older name. The cipher is rebuilt when the
    configured keys change (e.g. a new key is put in front for rotation).
    """
    cfg = current_app.config
    raw = cfg.get("CLINICAL_DATA_KEYS") or cfg.get("FIELD_ENCRYPTION_KEYS") or _dev_key(cfg["INSTANCE_DIR"])
    cached = current_app.extensions.get("retreat_field_cipher")
    if cached is not None and cached[0] == raw:
        return cached[1]
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    cipher = MultiFernet([Fernet(k.encode()) for k in keys])
    current_app.extensions["retreat_field_cipher"] = (raw, cipher)
    return cipher


def encrypt_field(plaintext: str | None) -> str | None:
    if plaintext is None:
        return None
    return field_cipher().encrypt(plaintext.encode()).decode()


def decrypt_field(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return field_cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise FieldDecryptionError("clinical field could not be decrypted with the configured keys") from exc


def rotate_field(token: str | None) -> str | None:
    """Re-encrypt under the newest key (used by the key-rotation command)."""
    if token is None:
        return None
    return field_cipher().rotate(token.encode()).decode()


def encrypted_text(column: str, *, doc: str | None = None) -> property:
    """A ``str`` model attribute stored encrypted in ``column`` (a nullable Text ``*_enc`` column).

    Reading decrypts ("" when nothing is stored), writing encrypts (an empty text is stored as
    NULL). The column belongs in ``retreat.privacy.key_rotation.ENCRYPTED_COLUMNS``.
    """

    def read(obj) -> str:
        return decrypt_field(getattr(obj, column)) or ""

    def write(obj, value: str | None) -> None:
        setattr(obj, column, encrypt_field(value) if value else None)

    return property(read, write, doc=doc)
