"""Form errors name their field ("Email is required.") instead of "This field is required.", app-wide."""

from __future__ import annotations

import ast
from pathlib import Path

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField

from retreat.web.forms import DataRequired, InputRequired, Length

ROOT = Path(__file__).resolve().parents[2] / "retreat"


class _Form(FlaskForm):
    class Meta:
        csrf = False

    email = EmailField("Email", validators=[DataRequired(), Length(max=20)])
    name = StringField("full name", validators=[InputRequired(), Length(min=2, max=5)])
    code = StringField("Code", validators=[DataRequired(message="Enter a discount code.")])


def test_required_and_length_errors_name_their_field(app):
    with app.test_request_context(method="POST", data={}):
        form = _Form()
        assert not form.validate()
        assert form.errors == {"email": ["Email is required."], "name": ["Full name is required."],
                               "code": ["Enter a discount code."]}
    with app.test_request_context(method="POST", data={"email": "a" * 21, "name": "abcdef", "code": "x"}):
        form = _Form()
        assert not form.validate()
        assert form.errors == {"email": ["Email must be at most 20 characters (it has 21)."],
                               "name": ["Full name must be at most 5 characters (it has 6)."]}
    with app.test_request_context(method="POST", data={"email": "a@b.co", "name": "a", "code": "x"}):
        form = _Form()
        assert not form.validate() and form.errors == {"name": ["Full name must be at least 2 characters."]}


def test_no_form_uses_the_anonymous_wtforms_validators():
    """Every form imports DataRequired, InputRequired and Length from retreat.web.forms."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "web" / "forms.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "wtforms.validators":
                offenders += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names
                              if a.name in {"DataRequired", "InputRequired", "Length"}]
    assert offenders == []


def test_an_empty_staff_user_form_names_each_field(make_client, db):
    admin = make_client("admin", password=None)
    page = admin.post("/admin/users/new", data={}).get_data(as_text=True)
    assert "Full name is required." in page and "Email is required." in page
    assert "This field is required." not in page
