"""Secrets at rest: capability links sealed in the outbox; checklist answers, motivation, evidence encrypted

``outbox_messages.private_enc`` holds a message's capability links (password reset, email
verification, consult manage, follow-up answer) encrypted with the app's field keys
(CLINICAL_DATA_KEYS, else the instance's dev key file, as ``retreat.core.crypto``). Messages still
to be sent (pending, sending, failed) have their links moved there from the plain context and
the invite's description; sent and cancelled ones have them stripped (the email carries them).
The downgrade puts the links of unsent messages back in the plain context.

Checklist answers (dietary needs, emergency contact), an application's motivation and a discount's
evidence move to encrypted ``*_enc`` columns with the same keys (existing values encrypted, the
plain columns dropped); the downgrade decrypts them back into the plain columns.

Revision ID: secrets01
Revises: sess0023
Create Date: 2026-12-08 01:00:00

"""
import json
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, MultiFernet

revision = 'secrets01'
down_revision = 'sess0023'
branch_labels = None
depends_on = None

UNSENT = ('pending', 'sending', 'failed')
# Which context entries are capability links: (template or None for any, key).
LINK_KEYS = ((None, 'manage_url'), ('password_reset', 'reset_url'), ('verify_email', 'verify_url'),
             ('followup_checkin', 'url'), ('followup_survey', 'url'))
MANAGE_LINE = 'Reschedule or cancel: '

outbox = sa.table('outbox_messages', sa.column('id', sa.Integer), sa.column('status', sa.String),
                  sa.column('template', sa.String), sa.column('context', sa.JSON), sa.column('ics', sa.JSON),
                  sa.column('private_enc', sa.Text))


def _config(name, default=''):
    try:
        from flask import current_app
        return current_app.config.get(name) or default
    except (ImportError, RuntimeError):
        return os.environ.get(name) or default


_CIPHER = []


def cipher():
    """The app's field cipher: CLINICAL_DATA_KEYS (newest first), else instance/field_key (created
    like the app creates it). Built only when a value is to be encrypted or decrypted."""
    if not _CIPHER:
        raw = _config('CLINICAL_DATA_KEYS') or _config('FIELD_ENCRYPTION_KEYS')
        if not raw:
            instance = Path(_config('INSTANCE_DIR') or os.environ.get('RETREAT_INSTANCE_DIR') or 'instance')
            path = instance / 'field_key'
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, 'w') as fh:
                    fh.write(Fernet.generate_key().decode())
            raw = path.read_text().strip()
        _CIPHER.append(MultiFernet([Fernet(k.strip().encode()) for k in raw.split(',') if k.strip()]))
    return _CIPHER[0]


def encrypt(value):
    return cipher().encrypt(value.encode()).decode()


def decrypt(token):
    return cipher().decrypt(token.encode()).decode()


def _split_links(template, context, ics):
    """(plain context, plain ics, private context, private ics) of one message."""
    context, private, private_ics = dict(context or {}), {}, {}
    for only, key in LINK_KEYS:
        if (only is None or only == template) and context.get(key):
            private[key] = context.pop(key)
    if ics and MANAGE_LINE in (ics.get('description') or ''):
        private_ics['description'] = ics['description']
        ics = dict(ics, description='\n'.join(line for line in ics['description'].split('\n')
                                               if not line.startswith(MANAGE_LINE)))
    return context, ics, private, private_ics


def _seal_outbox_links(conn):
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.status, outbox.c.template, outbox.c.context,
                                  outbox.c.ics)).all()
    for row_id, status, template, context, ics in rows:
        plain, plain_ics, private, private_ics = _split_links(template, context, ics)
        if not (private or private_ics):
            continue
        values = {'context': plain, 'ics': plain_ics}
        if status in UNSENT:
            payload = {k: v for k, v in (('context', private), ('ics', private_ics)) if v}
            values['private_enc'] = encrypt(json.dumps(payload, separators=(',', ':')))
        conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))


def _unseal_outbox_links(conn):
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.context, outbox.c.ics, outbox.c.private_enc)
                        .where(outbox.c.private_enc.is_not(None))).all()
    for row_id, context, ics, token in rows:
        payload = json.loads(decrypt(token))
        merged_ics = {**ics, **payload.get('ics', {})} if ics else None
        conn.execute(outbox.update().where(outbox.c.id == row_id)
                     .values(context={**(context or {}), **payload.get('context', {})}, ics=merged_ics))


# (table, plain column, its type, encrypted column)
FIELDS = (('checklist_items', 'answer', sa.Text(), 'answer_enc'),
          ('enrollments', 'motivation', sa.Text(), 'motivation_enc'),
          ('discount_redemptions', 'evidence', sa.String(length=300), 'evidence_enc'))


def _move(conn, table_name, source, target, convert):
    """Copy ``source`` into ``target`` through ``convert`` (encrypt or decrypt) for every row."""
    table = sa.table(table_name, sa.column('id', sa.Integer), sa.column(source, sa.Text), sa.column(target, sa.Text))
    rows = conn.execute(sa.select(table.c.id, table.c[source]).where(table.c[source].is_not(None),
                                                                    table.c[source] != '')).all()
    for row_id, value in rows:
        conn.execute(table.update().where(table.c.id == row_id).values({target: convert(value)}))


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('private_enc', sa.Text(), nullable=True))
    _seal_outbox_links(op.get_bind())
    for table_name, plain, _type, enc in FIELDS:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column(enc, sa.Text(), nullable=True))
        _move(op.get_bind(), table_name, plain, enc, encrypt)
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_column(plain)


def downgrade():
    for table_name, plain, type_, enc in FIELDS:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column(plain, type_, nullable=False, server_default=''))
        _move(op.get_bind(), table_name, enc, plain, decrypt)
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(plain, server_default=None)
            batch_op.drop_column(enc)
    _unseal_outbox_links(op.get_bind())
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('private_enc')
