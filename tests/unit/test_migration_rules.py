"""Migration rules for rolling upgrades (README "Rolling upgrades").

During a rolling upgrade the new schema is live while instances of the previous release still
serve requests, so a migration's ``upgrade()`` may only *expand* the schema. This lint reads every
revision in ``migrations/versions`` and flags, inside ``upgrade()``:

* ``drop_column``, ``drop_table``, ``drop_constraint``, ``rename_table`` (on ``op`` or a batch op);
* ``alter_column(..., new_column_name=...)`` (a rename) and ``alter_column(..., nullable=False)``
  without ``server_default`` (old code's INSERTs that leave the column out then fail);
* ``add_column`` of a column with ``nullable=False`` (or ``primary_key=True``) and no ``server_default``;
* ``op.execute`` of literal SQL that drops, renames or sets NOT NULL.

A revision that removes what an earlier release stopped reading declares itself a contract step
with a module-level ``CONTRACT = True`` and a comment on that line (or the line above) naming the
release that stopped reading it. The revisions present when the rule was introduced are a frozen
baseline and are not checked; every new revision is.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"

# Every revision that existed when the rule was introduced (frozen: never add to this list).
BASELINE = frozenset(
    {
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0007",
        "0008",
        "0010",
        "0011",
        "0015",
        "0016",
        "0017",
        "0018",
        "0019",
        "0020",
        "0021",
        "0022",
        "0023",
        "sess0023",
        "dosing01",
        "secrets01",
        "g16a_sign_in_counters",
        "g16b_consult_owner_confirmation",
        "0024dr",
        "homes01",
    }
)

_ALWAYS_CONTRACT = {"drop_column", "drop_table", "drop_constraint", "rename_table"}
_SQL_CONTRACT = re.compile(
    r"\b(DROP\s+(COLUMN|TABLE|CONSTRAINT)|RENAME\s+(COLUMN|TO)|SET\s+NOT\s+NULL)\b", re.IGNORECASE
)


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_false(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _has_server_default(call: ast.Call) -> bool:
    value = _kw(call, "server_default")
    return value is not None and not (isinstance(value, ast.Constant) and value.value is None)


def _literal_sql(node: ast.expr) -> str | None:
    """The text of a string literal, an f-string's literal parts, or ``sa.text("...")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.Call) and node.args:
        return _literal_sql(node.args[0])
    return None


def _column_calls(node: ast.expr) -> list[ast.Call]:
    """``sa.Column(...)``/``Column(...)`` calls passed to add_column."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "Column":
            return [node]
    return []


def _call_violations(call: ast.Call) -> list[str]:
    func = call.func
    if not isinstance(func, ast.Attribute):
        return []
    name = func.attr
    line = call.lineno
    if name in _ALWAYS_CONTRACT:
        return [f"line {line}: {name}"]
    if name == "alter_column":
        out = []
        if _kw(call, "new_column_name") is not None:
            out.append(f"line {line}: alter_column(new_column_name=...) renames a column")
        if _is_false(_kw(call, "nullable")) and not _has_server_default(call):
            out.append(f"line {line}: alter_column(nullable=False) without server_default")
        return out
    if name == "add_column":
        out = []
        for arg in list(call.args) + [k.value for k in call.keywords]:
            for col in _column_calls(arg):
                required = _is_false(_kw(col, "nullable")) or _is_true(_kw(col, "primary_key"))
                if required and not _has_server_default(col):
                    out.append(f"line {line}: add_column of a NOT NULL column without server_default")
        return out
    if name == "execute" and call.args:
        sql = _literal_sql(call.args[0])
        if sql and _SQL_CONTRACT.search(sql):
            return [f"line {line}: execute() of SQL that drops, renames or sets NOT NULL"]
    return []


def _contract_flag(tree: ast.Module, source: str) -> tuple[bool, bool]:
    """(declares ``CONTRACT = True`` at module level, that line or the one above has a comment)."""
    lines = source.splitlines()
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "CONTRACT" for t in node.targets)
            and _is_true(node.value)
        ):
            this = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            commented = bool(re.search(r"#\s*\S", this)) or bool(re.match(r"#\s*\S", above))
            return True, commented
    return False, False


def check_migration_source(source: str) -> list[str]:
    """Problems with one revision's source for a rolling upgrade; empty when it only expands."""
    tree = ast.parse(source)
    upgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "upgrade"),
        None,
    )
    contract, commented = _contract_flag(tree, source)
    if contract:
        if not commented:
            return ["CONTRACT = True needs a comment naming the earlier release that stopped reading it"]
        return []
    if upgrade is None:
        return []
    problems: list[str] = []
    for node in ast.walk(upgrade):
        if isinstance(node, ast.Call):
            problems.extend(_call_violations(node))
    return problems


def _revision_of(tree: ast.Module) -> str | None:
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id == "revision" and isinstance(node.value, ast.Constant):
                return node.value.value
    return None


def _revisions() -> dict[str, Path]:
    out = {}
    for path in sorted(VERSIONS.glob("*.py")):
        rev = _revision_of(ast.parse(path.read_text()))
        assert rev, f"{path.name} declares no revision"
        out[rev] = path
    return out


# --- the rule on the repository's migrations ---------------------------------------------------


def test_every_new_revision_only_expands_or_is_a_declared_contract_step():
    problems = {}
    for rev, path in _revisions().items():
        if rev in BASELINE:
            continue
        found = check_migration_source(path.read_text())
        if found:
            problems[path.name] = found
    assert problems == {}, (
        "non-expand operations in upgrade() break the previous release during a rolling upgrade "
        "(README 'Rolling upgrades'): add a nullable column / server default instead, or move the "
        "removal to a later release's migration with CONTRACT = True  # <release> stopped reading it\n"
        + "\n".join(f"{name}: {p}" for name, ps in problems.items() for p in ps)
    )


def test_baseline_names_only_revisions_that_exist():
    # A typo or a deleted file in the baseline would otherwise exempt a future revision id.
    assert BASELINE <= set(_revisions()), sorted(BASELINE - set(_revisions()))


# --- the checker itself ------------------------------------------------------------------------

_HEADER = "from alembic import op\nimport sqlalchemy as sa\n\nrevision = 'x1'\ndown_revision = 'homes01'\n\n"


def _src(upgrade_body: str, extra: str = "") -> str:
    body = "\n".join("    " + line for line in upgrade_body.strip().splitlines())
    return _HEADER + extra + f"\n\ndef upgrade():\n{body}\n\n\ndef downgrade():\n    op.drop_column('users', 'x')\n"


@pytest.mark.parametrize(
    "body",
    [
        "op.drop_column('users', 'phone')",
        "op.drop_table('users')",
        "op.rename_table('users', 'accounts')",
        "op.drop_constraint('fk_x', 'users')",
        "op.alter_column('users', 'phone', new_column_name='phone_number')",
        "op.alter_column('users', 'phone', nullable=False)",
        "op.add_column('users', sa.Column('nickname', sa.Text(), nullable=False))",
        "with op.batch_alter_table('users') as batch_op:\n    batch_op.drop_column('phone')",
        "op.execute('ALTER TABLE users DROP COLUMN phone')",
        "op.execute(sa.text('ALTER TABLE users RENAME COLUMN phone TO phone_number'))",
        "op.execute('ALTER TABLE users ALTER COLUMN phone SET NOT NULL')",
    ],
)
def test_checker_flags_non_expand_operations(body):
    assert check_migration_source(_src(body)), body


@pytest.mark.parametrize(
    "body",
    [
        "op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True))",
        "op.add_column('users', sa.Column('nickname', sa.Text()))",
        "op.add_column('users', sa.Column('n', sa.Integer(), nullable=False, server_default='0'))",
        "op.alter_column('users', 'phone', nullable=False, server_default='')",
        "op.alter_column('users', 'phone', nullable=True)",
        "op.create_table('t', sa.Column('id', sa.Integer(), primary_key=True, nullable=False))",
        "op.create_index('ix_users_phone', 'users', ['phone'])",
        "op.execute('UPDATE users SET phone = NULL WHERE id < 10')",
    ],
)
def test_checker_accepts_expand_operations(body):
    assert check_migration_source(_src(body)) == [], body


def test_checker_ignores_downgrade_and_honours_a_commented_contract_flag():
    # downgrade() drops in every _src(); only upgrade() is checked.
    assert check_migration_source(_src("op.add_column('users', sa.Column('a', sa.Text()))")) == []
    drop = "op.drop_column('users', 'nickname')"
    assert check_migration_source(_src(drop, "CONTRACT = True  # 0.4 stopped reading users.nickname")) == []
    assert check_migration_source(_src(drop, "# release 0.4 stopped reading users.nickname\nCONTRACT = True")) == []
    uncommented = check_migration_source(_src(drop, "CONTRACT = True"))
    assert uncommented and "comment" in uncommented[0]
    assert check_migration_source(_src(drop, "CONTRACT = False  # not really")) != []
