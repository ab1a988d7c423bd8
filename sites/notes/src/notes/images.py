"""Uploaded images, decoded and written anew with Pillow.

Checking magic bytes is not enough: a GIF can carry HTML, a JPEG a PHP script, and photos carry
EXIF metadata (the GPS position included). Only the decoded pixels are kept: the file that is
stored is a new one, with the orientation applied, colours converted to sRGB, and no metadata,
comment or trailing bytes. Sizes are checked before decoding (decompression bombs).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError
from sqlalchemy import event, exists, literal, or_, select
from sqlalchemy.orm import Session

from .extensions import db

FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
MAX_FRAMES = 1000  # an animation with more is not a picture for a note


class Refused(ValueError):
    """An upload that is not stored: ``str()`` is the message for the person, with a status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def reencode(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """The image in ``data`` written anew in its own format; returns (bytes, extension)."""
    try:
        # only these four decoders: no exotic format's parser is exposed to uploads
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            return _reencode(image, max_pixels)
    except Refused:
        raise
    except UnidentifiedImageError:
        raise Refused("Only PNG, JPEG, GIF and WebP images can be uploaded.", 415) from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise Refused(f"The image has more than {max_pixels / 1e6:g} megapixels.", 413) from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise Refused("The image could not be read: the file is damaged or incomplete.",
                      400) from None


def _reencode(image: Any, max_pixels: int) -> tuple[bytes, str]:
    fmt = image.format
    width, height = image.size
    animated = fmt in ("GIF", "WEBP") and getattr(image, "is_animated", False)
    if width * height > max_pixels:
        raise Refused(f"The image is {width} x {height} pixels; the largest accepted is "
                      f"{max_pixels / 1e6:g} megapixels.", 413)
    frames = []
    for number, frame in enumerate(ImageSequence.Iterator(image) if animated else [image]):
        if number >= MAX_FRAMES or (number + 1) * width * height > max_pixels:
            raise Refused(f"The animation has too many frames (at most {MAX_FRAMES}, and "
                          f"{max_pixels / 1e6:g} megapixels in all).", 413)
        duration = frame.info.get("duration", 100)
        frame = _clean(ImageOps.exif_transpose(frame) if not animated else frame.copy(), fmt)
        frames.append((frame, duration))
    out = io.BytesIO()
    first = frames[0][0]
    options: dict[str, Any] = {}
    if animated:
        options = {"save_all": True, "append_images": [f for f, _ in frames[1:]],
                   "duration": [d for _, d in frames], "loop": image.info.get("loop", 0)}
    if fmt == "JPEG":
        options.update(quality=90, optimize=True)
    elif fmt == "WEBP":
        options.update(quality=90)
    elif fmt == "PNG":
        options.update(optimize=False)
    if "transparency" in first.info and fmt in ("PNG", "GIF"):
        options["transparency"] = first.info["transparency"]
    for frame, _ in frames:
        frame.info = {key: frame.info[key] for key in ("transparency",) if key in frame.info}
    first.save(out, format=fmt, **options)
    return out.getvalue(), FORMATS[fmt]


def _clean(frame: Any, fmt: str) -> Any:
    """A frame with sRGB colours (ICC profile applied, then dropped) in a mode ``fmt`` takes."""
    icc = frame.info.get("icc_profile")
    if icc and frame.mode in ("RGB", "RGBA", "CMYK"):
        # an unusable profile: keep the pixels as they are
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
            frame = ImageCms.profileToProfile(
                frame, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                outputMode="RGBA" if frame.mode == "RGBA" else "RGB")
    if fmt == "JPEG" and frame.mode not in ("L", "RGB"):
        frame = frame.convert("RGB")
    elif fmt == "WEBP" and frame.mode not in ("RGB", "RGBA"):
        frame = frame.convert("RGBA")
    if frame.mode == "CMYK":
        frame = frame.convert("RGB")
    return frame


# -- CLI: files uploaded before uploads were written anew --------------------------------------

uploads_cli = AppGroup("uploads", help="Manage uploaded images.")


@uploads_cli.command("reencode")
def reencode_command() -> None:
    """Write every stored upload anew, as new uploads are (for files stored before that).

    A file that is not a readable image is moved to DATA_DIR/uploads-refused, where it is no
    longer served. Names stay the same, so notes keep showing their images.
    """
    data = Path(current_app.config["NOTES_DATA_DIR"])
    refused = data / "uploads-refused"
    counts = {"rewritten": 0, "refused": 0}
    for path in sorted((data / "uploads").iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            fresh, _ = reencode(path.read_bytes(), current_app.config["NOTES_MAX_IMAGE_PIXELS"])
        except Refused as e:
            refused.mkdir(exist_ok=True)
            path.replace(refused / path.name)
            click.echo(f"{path.name}: moved to {refused}: {e}", err=True)
            counts["refused"] += 1
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(fresh)
        tmp.replace(path)
        counts["rewritten"] += 1
    click.echo(f"{counts['rewritten']} rewritten, {counts['refused']} refused")


# -- uploads no note refers to any more ---------------------------------------------------------

MEDIA_NAME = re.compile(r"/media/([A-Za-z0-9_-]{8,64}\.(?:png|jpg|gif|webp))")


def names_in(bodies: Iterable[str]) -> set[str]:
    """The uploads a note's (or revision's) HTML shows."""
    return {name for body in bodies for name in MEDIA_NAME.findall(body or "")}


def forget_later(bodies: Iterable[str]) -> None:
    """These bodies are going (a note purged, old revisions dropped): once the transaction is
    committed, their images that no note, trashed note or kept revision shows any more are
    deleted. Never before the commit: a rollback keeps everything."""
    found = names_in(bodies)
    if found:
        db.session.info.setdefault("forget_images", set()).update(found)


def unreferenced(names: Iterable[str]) -> list[str]:
    """Those of ``names`` that no note (live or in the trash) and no kept revision shows."""
    from .models import Note, NoteRevision

    gone = []
    for name in sorted(set(names)):
        link = f"/media/{name}"
        used = db.session.scalar(select(literal(1)).where(or_(
            exists().where(Note.body.contains(link, autoescape=True)),
            exists().where(NoteRevision.body.contains(link, autoescape=True)))))
        if not used:
            gone.append(name)
    return gone


@event.listens_for(Session, "after_commit")
def _collect(session: Session) -> None:
    names = session.info.pop("forget_images", None)
    if names:  # checked and deleted right after this commit (the session cannot query here)
        pending: set[str] = session.info.setdefault("forget_now", set())
        pending.update(names)


@event.listens_for(Session, "after_soft_rollback")
def _keep(session: Session, _previous: Any) -> None:
    session.info.pop("forget_images", None)


def delete_unreferenced() -> int:
    """Delete the uploads :func:`forget_later` named, if nothing refers to them now."""
    names = db.session.info.pop("forget_now", None)
    if not names:
        return 0
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "uploads"
    gone = unreferenced(names)
    db.session.rollback()  # end the read
    for name in gone:
        (folder / name).unlink(missing_ok=True)
    if gone:
        current_app.logger.info("deleted %d upload(s) no note refers to any more", len(gone))
    return len(gone)
