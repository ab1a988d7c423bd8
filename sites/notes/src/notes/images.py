"""Uploaded images, decoded and written anew with Pillow.

Checking magic bytes is not enough: a GIF can carry HTML, a JPEG a PHP script, and photos carry
EXIF metadata (the GPS position included). Only the decoded pixels are kept: the file that is
stored is a new one, with the orientation applied, colours converted to sRGB, and no metadata,
comment or trailing bytes. A photo larger than ``NOTES_IMAGE_SIDE`` is made that size (a phone's
12-50 megapixels are more than a page shows), and still images get smaller copies for small
screens, ``<name>-<width>w.<ext>`` beside the file: :func:`fit` lists them in the ``srcset`` of
every ``<img>`` that shows it. HEIC/HEIF photos (iPhones) are converted to JPEG: browsers
other than Safari do not show them.

What decoding may cost is bounded before it starts, from the file's own structure (read without
decoding a pixel): every GIF frame's size and the canvas Pillow would grow to hold them all,
the pixels of all frames together, a JPEG's number of scans (each progressive scan is a pass
over the whole picture). And the decoding itself runs in a child process with an address-space
limit (``RLIMIT_AS``), a CPU limit and a wall-clock timeout: whatever a file the checks did not
foresee does, the worker that serves the site stays small and free.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import resource
import select
import signal
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app, has_app_context
from flask.cli import AppGroup
from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError
from sqlalchemy import event, exists, literal, or_
from sqlalchemy.orm import Session

from .extensions import db

FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
CONVERTED = {"HEIF": "JPEG"}  # accepted, and stored in a format every browser shows
WIDTHS = (480, 960, 1600)  # the smaller copies made of a wider still image (srcset)
ACCEPTED = "PNG, JPEG, GIF, WebP and HEIC"
MAX_FRAMES = 1000  # an animation with more is not a picture for a note
MAX_SCANS = 100  # a progressive JPEG has about 10; each scan is a pass over every pixel
MEMORY = 1024 * 1024 * 1024  # address space the decoding child may add to the worker's
SECONDS = 30.0  # wall-clock time for one image (under the kit's default request_timeout, 60)


class Refused(ValueError):
    """An upload that is not stored: ``str()`` is the message for the person, with a status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _too_big(width: int, height: int, max_pixels: int) -> Refused:
    return Refused(f"The image is {width} x {height} pixels; the largest accepted is "
                   f"{max_pixels / 1e6:g} megapixels.", 413)


def _too_many_frames(max_pixels: int) -> Refused:
    return Refused(f"The animation has too many frames (at most {MAX_FRAMES}, and "
                   f"{max_pixels / 1e6:g} megapixels in all).", 413)


def gif_frames(data: bytes) -> tuple[int, int, int]:
    """(canvas width, canvas height, frames) of a GIF, read from its blocks without decoding.

    The canvas is the logical screen grown to hold every frame, as Pillow grows it (a frame
    may claim to be larger than the screen it is drawn on): the size of each decoded frame.
    """
    if len(data) < 13:
        raise Refused("The image could not be read: the file is damaged or incomplete.", 400)
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            if pos + 10 > len(data):
                break
            left, top, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            width, height = max(width, left + w), max(height, top + h)
            frames += 1
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW code size
        else:
            break  # Pillow stops here too
    return width, height, frames


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return pos + 1


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS segments) a JPEG has, counted by walking its markers."""
    pos, scans, end = 2, 0, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:  # entropy-coded data: on to the next marker
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stuffed byte, RSTn
            pos += 2
            continue
        if marker == 0xD9:  # end of image
            break
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker == 0xDA:
            scans += 1
            if scans > MAX_SCANS:
                break
        pos += 2 + length
    return scans


def check_structure(data: bytes, max_pixels: int) -> None:
    """Refuse what would be too costly to decode, from the file's structure alone."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height, frames = gif_frames(data)
        if width * height > max_pixels:
            raise _too_big(width, height, max_pixels)
        if frames > MAX_FRAMES or frames * width * height > max_pixels:
            raise _too_many_frames(max_pixels)
    elif data[:2] == b"\xff\xd8" and jpeg_scans(data) > MAX_SCANS:
        raise Refused(f"The JPEG has more than {MAX_SCANS} scans: save it again as a plain "
                      "or progressive JPEG.", 413)


@dataclass
class Encoded:
    """An image written anew: the file, its extension and size, and its smaller copies
    (width, file), narrowest first."""

    data: bytes
    ext: str
    width: int
    height: int
    copies: list[tuple[int, bytes]] = field(default_factory=list)


def reencode(data: bytes, max_pixels: int, max_side: int = 0, memory: int = MEMORY,
             seconds: float = SECONDS) -> Encoded:
    """The image in ``data`` written anew (in its own format, HEIF as JPEG), no larger than
    ``max_side`` on its longest side if given (a still image; with smaller copies).

    The structure is checked first; the decoding runs in a child process that may add at
    most ``memory`` bytes of address space and run ``seconds``: past either, a 413/422.
    """
    check_structure(data, max_pixels)
    return _in_child(data, max_pixels, max_side, memory, seconds)


def reencode_here(data: bytes, max_pixels: int, max_side: int = 0) -> Encoded:
    """:func:`reencode`'s decoding, in this process (the child's part)."""
    try:
        decoders = list(FORMATS)
        if data[4:12] in HEIF_BRANDS:  # libheif is loaded only where it is needed
            from pillow_heif import register_heif_opener

            register_heif_opener(thumbnails=False)
            decoders.append("HEIF")
        # only these decoders: no exotic format's parser is exposed to uploads
        with Image.open(io.BytesIO(data), formats=decoders) as image:
            return _reencode(image, max_pixels, max_side)
    except Refused:
        raise
    except UnidentifiedImageError:
        raise Refused(f"Only {ACCEPTED} images can be uploaded.", 415) from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise Refused(f"The image has more than {max_pixels / 1e6:g} megapixels.", 413) from None
    except MemoryError:
        raise _too_costly() from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise Refused("The image could not be read: the file is damaged or incomplete.",
                      400) from None


# an ISO media file's first box, ``ftyp``, and the brands of HEIF stills and sequences
HEIF_BRANDS = {b"ftyp" + brand for brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim",
                                             b"heis", b"hevm", b"hevs", b"mif1", b"msf1")}


def _too_costly() -> Refused:
    return Refused("The image is too costly to decode (memory or time): save it again, "
                   "smaller or simpler, and upload it again.", 422)


def _vm_size() -> int:
    """This process's address space, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _in_child(data: bytes, max_pixels: int, max_side: int, memory: int,
              seconds: float) -> Encoded:
    """:func:`reencode_here` in a forked child, limited; its answer comes back through a pipe.

    The answer: one status byte (``0`` done, ``1`` refused), then for done a JSON line
    (extension, size, the files' widths and lengths) and the files one after the other; for
    refused the HTTP status, a newline and the message.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        code = 0
        try:
            limit = _vm_size() + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            cpu = int(seconds) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            try:
                done = reencode_here(data, max_pixels, max_side)
                files = [(0, done.data), *done.copies]
                told = {"ext": done.ext, "size": [done.width, done.height],
                        "files": [[width, len(file)] for width, file in files]}
                answer = b"".join([b"0", json.dumps(told).encode(), b"\n",
                                   *(file for _, file in files)])
            except Refused as e:
                answer = b"1" + str(e.status).encode() + b"\n" + str(e).encode()
            with open(write_end, "wb", closefd=True) as pipe:
                pipe.write(answer)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    answer = b"".join(chunks)
    if timed_out or not answer:
        raise _too_costly()
    head, _, rest = answer.partition(b"\n")
    if head[:1] == b"1":
        raise Refused(rest.decode(), int(head[1:]))
    about = json.loads(head[1:])
    files, pos = [], 0
    for width, length in about["files"]:
        files.append((int(width), rest[pos:pos + length]))
        pos += length
    width, height = (int(n) for n in about["size"])
    return Encoded(files[0][1], str(about["ext"]), width, height, copies=files[1:])


def _reencode(image: Any, max_pixels: int, max_side: int = 0) -> Encoded:
    fmt = CONVERTED.get(image.format, image.format)
    width, height = image.size
    animated = fmt in ("GIF", "WEBP") and getattr(image, "is_animated", False)
    if width * height > max_pixels:
        raise _too_big(width, height, max_pixels)
    resize = bool(not animated and max_side and max(width, height) > max_side)
    if resize and image.format == "JPEG":  # decoded at 1/2, 1/4 or 1/8 scale: less memory
        scale = max_side / max(width, height)
        image.draft(image.mode, (int(width * scale) + 1, int(height * scale) + 1))
    frames = []
    total = 0
    for number, frame in enumerate(ImageSequence.Iterator(image) if animated else [image]):
        total += frame.size[0] * frame.size[1]  # (a GIF's canvas can grow from frame to frame)
        if number >= MAX_FRAMES or total > max_pixels:
            raise _too_many_frames(max_pixels)
        duration = frame.info.get("duration", 100)
        frame = _clean(ImageOps.exif_transpose(frame) if not animated else frame.copy(), fmt)
        if resize:
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        frames.append((frame, duration))
    first = frames[0][0]
    options: dict[str, Any] = {}
    if animated:
        options = {"save_all": True, "append_images": [f for f, _ in frames[1:]],
                   "duration": [d for _, d in frames], "loop": image.info.get("loop", 0)}
    options.update(_QUALITY.get(fmt, {}))
    if "transparency" in first.info and fmt in ("PNG", "GIF"):
        options["transparency"] = first.info["transparency"]
    for frame, _ in frames:
        frame.info = {key: frame.info[key] for key in ("transparency",) if key in frame.info}
    out = io.BytesIO()
    first.save(out, format=fmt, **options)
    done = Encoded(out.getvalue(), FORMATS[fmt], *first.size)
    if not animated and fmt != "GIF" and max_side:  # (a GIF is kept as it is: small, or moving)
        done.copies = [(w, _copy(first, w, fmt)) for w in WIDTHS if w < done.width * 0.8]
    return done


_QUALITY: dict[str, dict[str, Any]] = {"JPEG": {"quality": 90, "optimize": True},
                                       "WEBP": {"quality": 90}, "PNG": {"optimize": False}}


def _copy(image: Any, width: int, fmt: str) -> bytes:
    """``image`` made ``width`` pixels wide, as a file."""
    height = max(1, round(image.size[1] * width / image.size[0]))
    out = io.BytesIO()
    image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0).save(
        out, format=fmt, **_QUALITY.get(fmt, {}))
    return out.getvalue()


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
    """Write every stored upload anew, as new uploads are (for files stored before that): no
    longer than NOTES_IMAGE_SIDE, with its smaller copies (which notes list in srcset once
    saved again).

    A file that is not a readable image is moved to DATA_DIR/uploads-refused, where it is no
    longer served. Names stay the same, so notes keep showing their images.
    """
    data = Path(current_app.config["NOTES_DATA_DIR"])
    refused = data / "uploads-refused"
    counts = {"rewritten": 0, "refused": 0}
    paths = sorted((data / "uploads").iterdir())
    names = {path.name for path in paths}
    for path in paths:
        if path.name.startswith(".") or not path.is_file():
            continue
        copy = COPY_NAME.fullmatch(path.name)
        if copy and f"{copy[1]}.{copy[3]}" in names:
            continue  # a smaller copy: made again from its image
        try:
            fresh = reencode(path.read_bytes(), current_app.config["NOTES_MAX_IMAGE_PIXELS"],
                             current_app.config["NOTES_IMAGE_SIDE"])
        except Refused as e:
            refused.mkdir(exist_ok=True)
            path.replace(refused / path.name)
            click.echo(f"{path.name}: moved to {refused}: {e}", err=True)
            counts["refused"] += 1
            continue
        stem = path.name.rsplit(".", 1)[0]
        for width, file in [*fresh.copies, (0, fresh.data)]:  # the image last, as at upload
            target = path.with_name(f"{stem}-{width}w.{fresh.ext}") if width else path
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(file)
            tmp.replace(target)
        counts["rewritten"] += 1
    click.echo(f"{counts['rewritten']} rewritten, {counts['refused']} refused")


# -- images in a note's HTML: sized to keep their ratio, with their smaller copies -----------

# <img> as the sanitiser writes it: lower-case names, values in double quotes (a quote in a
# value is written &quot;)
_IMG = re.compile(r'<img((?:\s+[a-z][a-z0-9-]*(?:="[^"]*")?)*)\s*/?>')
_ATTR = re.compile(r'([a-z][a-z0-9-]*)(?:="([^"]*)")?')
_PIXELS = re.compile(r"(\d{1,5})(?:\.\d*)?(?:px)?")
COPY_NAME = re.compile(r"(.+)-(\d+)w\.(\w+)")


def _attributes(text: str) -> dict[str, str]:
    return {name: html.unescape(value or "") for name, value in _ATTR.findall(text)}


def _tag(attributes: dict[str, str]) -> str:
    return "<img" + "".join(f' {name}="{html.escape(value)}"'
                            for name, value in attributes.items()) + ">"


def images_in(body: str) -> list[dict[str, str]]:
    """The attributes of every ``<img>`` in sanitised HTML."""
    return [_attributes(match.group(1)) for match in _IMG.finditer(body)]


def fit(body: str) -> str:
    """Every ``<img>`` of sanitised HTML made to keep its aspect ratio at any width.

    The size the writer chose (a style's or the attributes' width) becomes ``width`` and
    ``height`` attributes: a maximum, which the stylesheet shrinks to the screen with the
    height following, and which the browser reserves before the image arrives. A height in a
    style never stays (it would squash the image on a narrow screen). For an upload of this
    site the height follows from the file's own ratio, a missing size is the file's, and
    ``srcset`` lists its smaller copies.
    """
    return _IMG.sub(lambda match: _tag(_fit_one(_attributes(match.group(1)))), body)


def _fit_one(attributes: dict[str, str]) -> dict[str, str]:
    kept = []
    for declaration in attributes.pop("style", "").split(";"):
        name, _, value = declaration.partition(":")
        pixels = _PIXELS.fullmatch(value.strip())
        if name in ("width", "height") and pixels:
            attributes.setdefault(name, pixels.group(1))
        elif name == "width" or name == "float":  # a percentage stays a style
            kept.append(declaration)
    for name in ("width", "height"):
        number = _PIXELS.fullmatch(attributes.get(name, ""))
        if number and int(number.group(1)) > 0:
            attributes[name] = number.group(1)
        else:
            attributes.pop(name, None)
    if kept:
        attributes["style"] = ";".join(kept)
    attributes.pop("srcset", None)
    attributes.pop("sizes", None)
    upload = _upload(attributes.get("src", ""))
    if upload is None:
        return _ordered(attributes)
    src, name, (width, height), copies = upload
    shown = min(int(attributes.get("width", width)), width) if width else 0
    if shown:
        attributes["width"] = str(shown)
        attributes["height"] = str(max(1, round(height * shown / width)))
    if copies and shown:
        base, ext = src.rsplit(".", 1)
        attributes["srcset"] = ", ".join(
            [f"{base}-{w}w.{ext} {w}w" for w in copies] + [f"{src} {width}w"])
        attributes["sizes"] = f"(max-width: {shown}px) 100vw, {shown}px"
    return _ordered(attributes)


def _ordered(attributes: dict[str, str]) -> dict[str, str]:
    """One order, whatever the input's: a body saved again is the same text."""
    first = ("src", "alt", "width", "height")
    return {**{n: attributes[n] for n in first if n in attributes},
            **{n: v for n, v in attributes.items() if n not in first}}


def _upload(src: str) -> tuple[str, str, tuple[int, int], list[int]] | None:
    """(src, name, size, widths of its smaller copies) of the upload at ``src`` (a path on this
    site, under the site's prefix if it has one), if it is one."""
    match = MEDIA_NAME.search(src)
    if (match is None or match.end() != len(src) or not src.startswith("/")
            or src.startswith("//") or not has_app_context()):
        return None
    name = match.group(1)
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "uploads"
    try:  # the header only: no pixel is decoded (and the file is one this site wrote)
        with Image.open(folder / name, formats=list(FORMATS)) as image:
            size = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    stem, ext = name.rsplit(".", 1)
    copies = [w for w in WIDTHS if (folder / f"{stem}-{w}w.{ext}").is_file()]
    return src, name, size, copies


def copies_of(name: str) -> list[str]:
    """The names of an upload's smaller copies that exist."""
    folder = Path(current_app.config["NOTES_DATA_DIR"]) / "uploads"
    stem, ext = name.rsplit(".", 1)
    return [copy for w in WIDTHS if (folder / (copy := f"{stem}-{w}w.{ext}")).is_file()]


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
        used = db.session.scalar(sa.select(literal(1)).where(or_(
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
        for copy in copies_of(name):
            (folder / copy).unlink(missing_ok=True)
        (folder / name).unlink(missing_ok=True)
    if gone:
        current_app.logger.info("deleted %d upload(s) no note refers to any more", len(gone))
    return len(gone)
