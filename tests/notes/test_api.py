"""The REST API with personal tokens, on every database; its OpenAPI spec."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from notes.extensions import db
from notes.models import ApiToken, Note, User
from notes.services import issue_token

from .test_site import XSS


def token_for(app, email: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        user = db.session.query(User).filter_by(email=email).one()
        return {"Authorization": f"Bearer {issue_token(user, 'test')}"}


def test_crud_with_a_token(app, client, user) -> None:
    auth = token_for(app, user[0].email)
    r = client.post("/api/notes", json={"title": "API note", "body": XSS, "published": False},
                    headers=auth)
    assert r.status_code == 201, r.json
    note = r.json
    assert note["slug"] == "api-note" and note["author"] == "Alice"
    assert "<script" not in note["body"] and "onerror" not in note["body"]
    assert "javascript:" not in note["body"] and "<td>cell</td>" in note["body"]
    assert client.get(f"/api/notes/{note['id']}").status_code == 404  # a draft, anonymously
    assert client.get(f"/api/notes/{note['id']}", headers=auth).json["title"] == "API note"
    r = client.patch(f"/api/notes/{note['id']}", json={"published": True, "title": "Renamed"},
                     headers=auth)
    assert r.status_code == 200 and r.json["slug"] == "renamed" and r.json["published"]
    assert client.get(f"/api/notes/{note['id']}").json["title"] == "Renamed"
    assert client.delete(f"/api/notes/{note['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/notes/{note['id']}", headers=auth).status_code == 404


def test_authentication_and_ownership(app, client, user, other) -> None:
    assert client.post("/api/notes", json={"title": "x"}).status_code == 401
    bad = {"Authorization": "Bearer nt_not-a-real-token"}
    assert client.post("/api/notes", json={"title": "x"}, headers=bad).status_code == 401
    mine = client.post("/api/notes", json={"title": "Mine", "published": True},
                       headers=token_for(app, user[0].email)).json
    theirs = token_for(app, other[0].email)
    assert client.patch(f"/api/notes/{mine['id']}", json={"title": "x"},
                        headers=theirs).status_code == 403
    assert client.delete(f"/api/notes/{mine['id']}", headers=theirs).status_code == 403
    with app.app_context():  # tokens are stored hashed, never in clear
        stored = [t.token_hash for t in db.session.query(ApiToken)]
    assert all(len(h) == 64 for h in stored)


def test_validation_errors_name_the_field(app, client, user) -> None:
    auth = token_for(app, user[0].email)
    r = client.post("/api/notes", json={"body": "no title"}, headers=auth)
    assert r.status_code == 422
    assert "title" in r.json["detail"]["json"]
    r = client.post("/api/notes", json={"title": "x" * 201}, headers=auth)
    assert r.status_code == 422 and "title" in r.json["detail"]["json"]
    r = client.get("/api/notes", query_string={"per_page": 0})
    assert r.status_code == 422 and "per_page" in r.json["detail"]["query"]


def test_list_filters_and_pagination(app, client, user, other) -> None:
    a, b = token_for(app, user[0].email), token_for(app, other[0].email)
    for i in range(5):
        client.post("/api/notes", json={"title": f"Alpha {i}", "published": True}, headers=a)
    client.post("/api/notes", json={"title": "Beta", "published": True}, headers=b)
    client.post("/api/notes", json={"title": "Secret", "published": False}, headers=b)
    r = client.get("/api/notes", query_string={"per_page": 2, "page": 2})
    assert [n["title"] for n in r.json["items"]] == ["Alpha 2", "Alpha 3"]
    # no list is counted: `next` leads on, by the last id seen (the same cost at any depth)
    seen, url = [], "/api/notes?per_page=2"
    while url:
        r = client.get(url)
        seen += [n["title"] for n in r.json["items"]]
        url = r.json["next"]
    assert seen == [*(f"Alpha {i}" for i in range(5)), "Beta"]

    def titles(headers: dict[str, str] | None = None, **query: object) -> list[str]:
        return [n["title"] for n in client.get("/api/notes", query_string=query,
                                                headers=headers).json["items"]]

    assert titles(author=other[0].id) == ["Beta"]
    assert sorted(titles(q="alpha")) == [f"Alpha {i}" for i in range(5)]
    assert len(titles(b)) == 7  # own drafts too
    assert titles(b, published=False) == ["Secret"]
    r = client.get("/api/notes", query_string={"q": "alpha", "per_page": 2})
    assert r.json["next"] and len(client.get(r.json["next"]).json["items"]) == 2


def test_openapi_spec_and_local_docs(client) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/notes"])
    assert {"get", "patch", "delete"} <= set(paths["/api/notes/{note_id}"])
    assert "422" in paths["/api/notes"]["post"]["responses"]
    assert "401" in paths["/api/notes"]["post"]["responses"]
    docs = client.get("/api/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs.lower() and "unpkg" not in docs.lower()


def test_concurrent_writers_of_one_title_all_succeed_with_unique_slugs(app, user) -> None:
    auth = token_for(app, user[0].email)

    def write(_: int) -> int:
        return app.test_client().post("/api/notes", json={"title": "Same title"},
                                      headers=auth).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(write, range(30)))
    assert statuses == [201] * 30  # a slug taken meanwhile is retried, never a 503
    with app.app_context():
        slugs = db.session.scalars(select(Note.slug)).all()
    assert len(slugs) == len(set(slugs)) == 30
