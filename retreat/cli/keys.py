"""`flask keys ...`: clinical data keys (CLINICAL_DATA_KEYS) and their rotation."""

from __future__ import annotations

import click
from cryptography.fernet import Fernet
from flask.cli import AppGroup

from retreat.cli.transaction import committed
from retreat.extensions import db
from retreat.privacy import key_rotation

keys_cli = AppGroup("keys", help="Clinical data encryption keys.")


@keys_cli.command("generate")
def keys_generate():
    """Print a new key to put in front of CLINICAL_DATA_KEYS (runs before any key is configured)."""
    click.echo(Fernet.generate_key().decode())


@keys_cli.command("rotate")
@click.option("--batch-size", default=500, show_default=True, help="Rows re-encrypted per transaction.")
def keys_rotate(batch_size):
    """Re-encrypt every clinical column under the newest key (the first of CLINICAL_DATA_KEYS).

    Rotation: put a new key first in CLINICAL_DATA_KEYS (keep the old ones after it), restart the
    app, run this command. Keep the retired keys after the new one for as long as backups made
    before the rotation are kept: those dumps are encrypted under them.
    """
    from retreat import audit

    with committed():  # each batch is a transaction of its own (on_batch), the audit event the last
        counts = key_rotation.rotate_keys(batch_size=batch_size, on_batch=db.session.commit)
        audit.record("keys.rotated", details=counts)
    for column, n in counts.items():
        click.echo(f"{column}: {n} re-encrypted")
    click.echo(f"Done: {sum(counts.values())} values are now under the newest key.")
