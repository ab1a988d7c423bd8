"""Issue 24 (content): photos of any size resized instead of refused, HEIC converted, smaller
copies for small screens (srcset), images sized to keep their ratio, alt text required on every
write path (editor, API, Excel import, admin), error pages that know who is signed in."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import delete

from notes import images
from notes.extensions import db
from notes.models import Note, NoteRevision
from notes.services import clean_html
from notes.text import Unfit

from .conftest import csrf
from .test_api import token_for
from .test_data import xlsx
from .test_security_data import upload
from .test_site import write


def photo(size: tuple[int, int], fmt: str = "JPEG", **options: object) -> bytes:
    """A photo-like picture (noise over gradients: it does not compress to nothing; HEIF
    without the noise, which its encoder takes minutes over)."""
    gradient = Image.linear_gradient("L").resize(size)
    noise = gradient if fmt == "HEIF" else Image.effect_noise(size, 50)
    image = Image.merge("RGB", [noise, gradient, gradient.transpose(Image.Transpose.ROTATE_180)])
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, quality=60)
    else:
        image.save(out, format=fmt, **options)
    return out.getvalue()


def served(client, url: str) -> Image.Image:  # type: ignore[no-untyped-def]
    r = client.get(url)
    assert r.status_code == 200, url
    return Image.open(io.BytesIO(r.data))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # files, not the database
def test_a_large_phone_photo_is_resized_with_smaller_copies(app, client, user, login) -> None:
    login(client, user[0].email)
    big = photo((6000, 4000), quality=80)
    assert 7_000_000 < len(big) < app.config["NOTES_MAX_IMAGE"]  # an 8 MB camera JPEG
    r = upload(client, big, "IMG_0001.JPG")
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (2560, 1707)
    stored = served(client, r.json["url"])
    assert stored.format == "JPEG" and stored.size == (2560, 1707)
    base = r.json["url"].rsplit(".", 1)[0]
    for width in (480, 960, 1600):
        copy = served(client, f"{base}-{width}w.jpg")
        assert copy.size == (width, round(1707 * width / 2560))
    # the setting: another longest side
    app.config["NOTES_IMAGE_SIDE"] = 1000
    tall = upload(client, photo((900, 1800), "PNG"), "tall.png")
    assert (tall.json["width"], tall.json["height"]) == (500, 1000)
    assert served(client, tall.json["url"]).size == (500, 1000)
    # a photo within the size is kept as it is, and gets the copies narrower than itself
    small = upload(client, photo((1000, 500), "WEBP"), "small.webp")
    assert (small.json["width"], small.json["height"]) == (1000, 500)
    folder = Path(app.config["NOTES_DATA_DIR"]) / "uploads"
    stem = small.json["fileName"].rsplit(".", 1)[0]
    assert sorted(p.name for p in folder.glob(f"{stem}*")) == [f"{stem}-480w.webp",
                                                               f"{stem}.webp"]
    # still beyond the decoding limit: refused in words, nothing stored
    app.config["NOTES_MAX_IMAGE_PIXELS"] = 1_000_000
    before = sorted(folder.iterdir())
    refused = upload(client, photo((2000, 1000), "PNG"))
    assert refused.status_code == 413 and "megapixels" in refused.json["error"]["message"]
    assert sorted(folder.iterdir()) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_iphone_heic_photo_is_converted_and_resized(client, user, login) -> None:
    login(client, user[0].email)
    heic = photo((2800, 2100), "HEIF")
    assert heic[4:12] == b"ftypheic"
    r = upload(client, heic, "IMG_0002.HEIC")
    assert r.status_code == 200, r.json
    assert r.json["url"].endswith(".jpg") and (r.json["width"], r.json["height"]) == (2560, 1920)
    image = served(client, r.json["url"])
    assert image.format == "JPEG" and image.size == (2560, 1920)
    assert not image.info.get("exif")  # no metadata kept, as for every upload
    broken = upload(client, heic[:2000], "cut.heic")
    assert broken.status_code in (400, 415) and broken.json["uploaded"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_images_keep_their_ratio_with_their_smaller_copies(app, client, user, login) -> None:
    login(client, user[0].email)
    r = upload(client, photo((1600, 1200)), "p.jpg")
    url, stem = r.json["url"], r.json["url"].rsplit(".", 1)[0]
    # what the image dialog used to store: a fixed height that squashed it on a phone
    write(client, "Pictured", f'<p><img alt="A field" src="{url}" '
                              'style="height:450px; width:800px; float:left"></p>')
    with app.app_context():
        body = db.session.query(Note).one().body
    image = re.search(r"<img [^>]*>", body)
    assert image is not None
    tag = image.group(0)
    assert 'width="800" height="600"' in tag  # the file's ratio, not 800 x 450
    assert 'style="float:left"' in tag and "height:" not in tag
    assert (f'srcset="{stem}-480w.jpg 480w, {stem}-960w.jpg 960w, {url} 1600w"' in tag)
    assert 'sizes="(max-width: 800px) 100vw, 800px"' in tag
    page = client.get("/n/pictured").get_data(as_text=True)
    assert tag in page
    with app.app_context():  # saved again (an edit): the same, not doubled
        assert clean_html(body) == body
        # no size given: the file's; larger than the file: the file's; elsewhere: as given
        assert f'<img src="{url}" alt="x" width="1600" height="1200" srcset=' in clean_html(
            f'<img src="{url}" alt="x">')
        assert 'width="1600" height="1200"' in clean_html(f'<img src="{url}" alt="x" '
                                                          'width="3000" height="10">')
        assert clean_html('<img src="https://example.org/a.png" alt="x" '
                          'style="width:300px;height:200px">') == (
            '<img src="https://example.org/a.png" alt="x" width="300" height="200">')
        assert clean_html('<img src="/media/missing0001.png" alt="x" style="width:50%">') == (
            '<img src="/media/missing0001.png" alt="x" style="width:50%">')
    # the note purged (no revision left showing it): the image goes, its copies with it
    folder = Path(app.config["NOTES_DATA_DIR"]) / "uploads"
    name = url.rsplit("/", 1)[1]
    assert len(list(folder.glob(name.split(".")[0] + "*"))) == 3
    with app.app_context():
        note = db.session.query(Note).one()
        images.forget_later([note.body])
        db.session.execute(delete(NoteRevision))
        db.session.delete(note)
        db.session.commit()
        assert images.delete_unreferenced() == 3  # (the copies are named in srcset)
    assert list(folder.glob(name.split(".")[0] + "*")) == []


def test_alt_text_is_required_on_every_write_path(app, client, user, admin, login) -> None:
    with pytest.raises(Unfit, match=r"the image '/media/a\.png' has no description \(alt text"):
        clean_html('<p><img src="/media/a.png" alt="  "></p>')
    login(client, user[0].email)
    r = write(client, "No alt", '<p><img src="/media/a.png"></p>')  # the editor's form
    assert r.status_code == 422
    assert "has no description (alt text): describe every image" in r.get_data(as_text=True)
    auth = token_for(app, user[0].email)
    r = client.post("/api/notes", json={"title": "No alt", "body": '<img src="/x.png">'},
                    headers=auth)
    assert r.status_code == 422 and "no description (alt text)" in r.json["message"]
    r = client.post("/api/notes", json={"title": "Alt", "body": '<img src="/x.png" alt="x">'},
                    headers=auth)
    assert r.status_code == 201
    r = client.patch(f"/api/notes/{r.json['id']}", json={"body": '<p><img src="/y.png"></p>'},
                     headers=auth)
    assert r.status_code == 422 and "no description (alt text)" in r.json["message"]
    boss = app.test_client()
    login(boss, admin[0].email)
    data = xlsx([["title", "author", "body", "published"],
                 ["Imported", user[0].email, '<p><img src="/z.png"></p>', "yes"]])
    r = boss.post("/admin/excel/import", data={"csrf_token": csrf(boss, "/admin/excel/"),
                  "file": (io.BytesIO(data), "notes.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 422
    assert "row 2, column body: the image &#39;/z.png&#39; has no description" in r.get_data(
        as_text=True)
    with app.app_context():
        assert [n.title for n in db.session.query(Note)] == ["Alt"]


def test_error_pages_show_whether_the_visitor_is_signed_in(app, client, user, login) -> None:
    page = client.get("/nowhere").get_data(as_text=True)
    assert ">Log in</a>" in page and "Log out" not in page and "Signed in" not in page
    login(client, user[0].email)
    r = client.get("/nowhere")
    page = r.get_data(as_text=True)
    assert r.status_code == 404
    assert "Signed in" in page and "Log out" in page and "My notes" in page
    assert ">Log in</a>" not in page
    assert client.get("/n/nothing-here").status_code == 404
