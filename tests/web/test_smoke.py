from tests import factories


def test_home_page_renders(client):
    r = client.get("/")
    assert r.status_code == 200
    assert b"Book a free consultation" in r.data or b"Group retreats" in r.data


def test_healthz_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}


def test_login_and_land_on_portal(client, db):
    u = factories.user("facilitator", email="Fern@Example.com")
    r = client.post("/account/login", data={"email": "FERN@example.com ", "password": factories.PASSWORD})
    assert r.status_code == 302
    r = client.get("/home")
    assert r.headers["Location"].endswith("/facilitator/")
    assert client.get("/facilitator/").status_code == 200
    assert u.last_login_at is not None


def test_wrong_password_is_refused_with_message(client, db):
    factories.user("participant", email="p@example.com")
    r = client.post("/account/login", data={"email": "p@example.com", "password": "nope-nope-nope"})
    assert r.status_code == 422
    assert b"do not match" in r.data
