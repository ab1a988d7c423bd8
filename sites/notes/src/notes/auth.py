"""Accounts: register, log in/out, change password, API tokens, and the ``users`` CLI.

A user's ``session_version`` is part of the id Flask-Login keeps in the session and in the
remember-me cookie, and :func:`load_user` compares it on every request: logging out, changing
the password, or an admin changing ``active`` or ``is_admin`` raises it (and deletes the user's
API tokens), which ends every session of that user at once, on every replica.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import click
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, refresh
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import delete, event, func, inspect, select
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm import Session as OrmSession
from wtforms import BooleanField, EmailField, Field, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from .extensions import db, login_manager
from .i18n import interface_choices
from .models import ApiToken, LoginFailure, User, utcnow
from .services import issue_token
from .sessions import rotate
from .text import clean_text

bp = Blueprint("auth", __name__)
_hasher = PasswordHasher()  # argon2id: memory-hard
WINDOW = timedelta(minutes=15)
PASSWORD_MIN, PASSWORD_MAX = 8, 200
# what a browser drops from a URL before resolving it (WHATWG URL parser)
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown e-mails, so that they cost what a known one costs."""
    return _hasher.hash("no such user")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` is refused, in one sentence, or None. Common and guessable passwords
    (dictionary words, names, keyboard patterns, dates, the e-mail itself) are refused by
    zxcvbn, scored offline."""
    if len(password) < PASSWORD_MIN:
        return _("The password must have at least %(count)s characters.", count=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        return _("The password must have at most %(count)s characters.", count=PASSWORD_MAX)
    from zxcvbn import zxcvbn  # imported here: it loads its word lists (start-up time)

    local = email.split("@", 1)[0]
    result = zxcvbn(password[:72], user_inputs=[email, local, "notes"])  # its length limit
    if result["score"] >= 3:
        return None
    feedback = result["feedback"]
    hint = feedback["warning"] or (feedback["suggestions"] or [""])[0]
    locale = get_locale()
    if locale is not None and locale.language != "en":
        hint = ""  # zxcvbn speaks English only
    return " ".join([_("This password is too easy to guess."), hint,
                     _("Use a few uncommon words or a longer phrase.")]).replace("  ", " ")


class StrongPassword:
    """WTForms validator: :func:`password_problem`, with the e-mail of the form or the user."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        email = getattr(getattr(form, "email", None), "data", None) or (
            current_user.email if current_user.is_authenticated else "")
        problem = password_problem(field.data or "", email)
        if problem:
            raise ValidationError(problem)


NAME_MAX = 80


def normalise_name(name: str) -> str:
    """A display name: control characters gone, spaces collapsed; ``ValueError`` if empty or
    too long."""
    name = " ".join(clean_text(name).split())
    if not name:
        raise ValueError(_("the display name is empty"))
    if len(name) > NAME_MAX:
        raise ValueError(_("the display name has more than %(count)s characters",
                           count=NAME_MAX))
    return name


def create_user(email: str, password: str, is_admin: bool = False,
                display_name: str | None = None) -> User:
    """Add and commit a user; ``ValueError`` if the email is taken, the password weak or the
    name unfit. Without a display name the account is shown as "author N" until it sets one
    (a name is never made from the e-mail address, which stays private)."""
    email = normalise_email(email)
    name = normalise_name(display_name) if display_name is not None else ""
    problem = password_problem(password, email)
    if problem:
        raise ValueError(problem)
    if db.session.scalar(select(User).where(User.email == email)):
        raise ValueError(_("a user with the email %(email)s exists already", email=email))
    user = User(email=email, password_hash=hash_password(password), is_admin=is_admin,
                display_name=name)
    db.session.add(user)
    db.session.commit()
    return user


def end_sessions(user: User) -> None:
    """End every session, remember-me cookie and API token of ``user`` (committed)."""
    user.session_version = (user.session_version or 0) + 1
    db.session.commit()


@event.listens_for(OrmSession, "before_flush")
def _end_sessions_on_change(orm: OrmSession, _context: Any, _instances: Any) -> None:
    """Whoever changes a password, ``active`` or ``is_admin`` (account page, admin, CLI), the
    user's sessions and API tokens end with the same commit."""
    for obj in list(orm.dirty):
        if not isinstance(obj, User):
            continue
        state: InstanceState[User] = inspect(obj)
        changed = {name for name in ("password_hash", "active", "is_admin", "session_version")
                   if state.attrs[name].history.has_changes()}
        if not changed:
            continue
        if "session_version" not in changed:
            obj.session_version = (obj.session_version or 0) + 1
        for token in obj.tokens:
            orm.delete(token)


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site as a browser would read it, else the home page.

    The browser drops tabs and newlines anywhere, control characters and spaces at both ends,
    and reads backslashes as slashes: ``/\t/evil.example`` and ``/\\evil.example`` both mean
    ``//evil.example``, another host. So normalise first, then check.
    """
    home = url_for("views.index")
    cleaned = _TAB_NEWLINE.sub("", (target or "").strip(_C0_AND_SPACE)).replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//") or _CONTROL.search(cleaned):
        return home
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc:
        return home
    return cleaned


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a session or remember-me cookie, if its session version is still current."""
    number, _, version = user_id.partition(":")
    user = db.session.get(User, int(number)) if number.isdigit() else None
    if user is not None and version == str(user.session_version):
        return user
    # ended: forget it, and have Flask-Login delete the remember-me cookie too
    for key in ("_user_id", "_fresh", "_id", "_remember_seconds"):
        session.pop(key, None)
    if current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies:
        session["_remember"] = "clear"
    return None


login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see this page.")
login_manager.localize_callback = str  # flashed in the reader's language, as a plain string


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    remember = BooleanField(_l("Remember me"))


class RegisterForm(FlaskForm):
    display_name = StringField(
        _l("Display name"), validators=[Length(max=NAME_MAX)],
        description=_l("Shown with your notes (you can set it later too). Your e-mail address "
                       "is never shown."))
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), StrongPassword()])
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", _l("Passwords differ."))],
    )


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    password = PasswordField(_l("New password"), validators=[DataRequired(), StrongPassword()])
    confirm = PasswordField(
        _l("Repeat new password"),
        validators=[DataRequired(), EqualTo("password", _l("Passwords differ."))],
    )


class NameForm(FlaskForm):
    display_name = StringField(
        _l("Display name"), validators=[DataRequired(), Length(max=NAME_MAX)],
        description=_l("Shown with your notes and on your author page."))


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=100)])


class LanguageForm(FlaskForm):
    locale = SelectField(_l("Language of the site's pages"), choices=[])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locale.choices = [("", _("The browser's language")), *interface_choices()]


def _limits(email: str) -> list[tuple[str, int]]:
    """Failure counters for this attempt: the client address, and the account from that address.

    No counter is per account alone, so nobody can lock another person's account out.
    """
    config = current_app.config
    address = request.remote_addr or "unknown"
    account = hashlib.sha256(f"{email}\n{address}".encode()).hexdigest()
    return [(f"addr:{address}", config["NOTES_LOGIN_ATTEMPTS_PER_ADDRESS"]),
            (f"acct:{account}", config["NOTES_LOGIN_ATTEMPTS"])]


def _reserve(limits: list[tuple[str, int]]) -> list[int] | None:
    """Count this attempt in before it is evaluated, atomically: its rows are written and
    committed first, then the counts read include them. Of N attempts at once, the k-th to
    commit reads at least k, so at most ``limit`` are ever evaluated, whatever the number of
    workers, replicas or the database (no read-then-write gap to race through).

    An attempt the counts already refuse is refused without writing anything, so a flood of
    attempts past the limit costs reads, not writes.

    Returns the ids of the rows written (the attempt, counted as a failure until it is known
    to be right), or None when a limit is reached (the rows are taken back: a refused attempt
    does not lengthen the wait).
    """
    since = utcnow() - WINDOW

    def over(counted_in: int) -> bool:
        return any(_count(key, since) + counted_in > limit for key, limit in limits)

    if over(1):  # already at the limit: refused without writing (a flood costs reads only)
        return None
    # failures past the window go first, in a transaction of their own: one that deleted a
    # range and then inserted into it deadlocked with another doing the same (MariaDB's gap
    # locks), and its attempt was answered 503
    db.session.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    db.session.commit()
    rows = [LoginFailure(key=key) for key, _ in limits]
    db.session.add_all(rows)
    db.session.commit()
    ids = [row.id for row in rows]
    if over(0):  # others were counted in meanwhile: this one is past the limit
        _release(ids)
        return None
    return ids


def _count(key: str, since: datetime) -> int:
    return db.session.scalar(
        select(func.count()).where(LoginFailure.key == key, LoginFailure.at > since)) or 0


def _release(ids: list[int]) -> None:
    db.session.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))
    db.session.commit()


def sign_in(user: User, remember: bool = False) -> None:
    """Log ``user`` in under a new session id: an id known before (planted) is worth nothing."""
    rotate()
    login_user(user, remember=remember)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("views.index"))
    form = LoginForm()
    if form.validate_on_submit():
        email = normalise_email(form.email.data or "")
        limits = _limits(email)
        reserved = _reserve(limits)
        if reserved is None:
            flash(_("Too many failed logins: wait 15 minutes and try again."), "error")
            return render_template("login.html", form=form), 429
        user = db.session.scalar(select(User).where(User.email == email))
        # one argon2 verification whether the account exists or not: same time either way
        ok = verify_password(user.password_hash if user else _dummy_hash(),
                             form.password.data or "")
        if user is not None and user.active and ok:
            _release(reserved)
            db.session.execute(delete(LoginFailure).where(LoginFailure.key == limits[1][0]))
            db.session.commit()
            sign_in(user, remember=bool(form.remember.data))
            return redirect(safe_next(request.args.get("next")))
        # a wrong guess: the rows written before it stay, as its failure
        flash(_("Wrong email or password."), "error")
    return render_template("login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    """Log out everywhere: every session, remember-me cookie and API token of the user ends."""
    if current_user.is_authenticated:
        end_sessions(current_user._get_current_object())
    session.clear()
    logout_user()  # also has Flask-Login delete the remember-me cookie
    rotate()
    flash(_("You are logged out."), "info")
    return redirect(url_for("views.index"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    if current_app.config["NOTES_REGISTRATION"] != "open":
        abort(403, _("Registration is closed on this site."))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data or "", form.password.data or "",
                               display_name=(form.display_name.data or "").strip() or None)
        except ValueError as e:
            form.email.errors = [*form.email.errors, str(e)]
        else:
            sign_in(user)
            flash(_("Welcome! Your account is ready."), "info")
            return redirect(url_for("views.my_notes"))
    return render_template("register.html", form=form)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> ResponseReturnValue:
    password_form = PasswordForm(prefix="pw")
    token_form = TokenForm(prefix="tok")
    name_form = NameForm(prefix="name", display_name=current_user.display_name)
    language_form = LanguageForm(prefix="lang", locale=current_user.locale or "")
    new_token = None
    if "name-display_name" in request.form and name_form.validate_on_submit():
        try:
            current_user.display_name = normalise_name(name_form.display_name.data or "")
        except ValueError as e:
            name_form.display_name.errors = [str(e).capitalize() + "."]
        else:
            db.session.commit()
            flash(_("Your display name is changed."), "info")
            return redirect(url_for("auth.account"))
    if "lang-locale" in request.form and language_form.validate_on_submit():
        current_user.locale = language_form.locale.data or None
        db.session.commit()
        refresh()  # this answer already in the language chosen
        flash(_("The site's language is changed."), "info")
        return redirect(url_for("auth.account"))
    if "pw-password" in request.form and password_form.validate_on_submit():
        if not verify_password(current_user.password_hash, password_form.current.data or ""):
            password_form.current.errors = [_("This is not your current password.")]
        else:
            user = current_user._get_current_object()
            user.password_hash = hash_password(password_form.password.data or "")
            db.session.commit()  # ends every session and API token of the user (see above)
            sign_in(user)  # but this one goes on, under a new id
            flash(_("Your password is changed. Your other sessions and your API tokens have "
                    "ended."), "info")
            return redirect(url_for("auth.account"))
    if "tok-name" in request.form and token_form.validate_on_submit():
        # POST/redirect/GET: a reload shows the page again, it does not make a second token.
        # The token waits in the (server-side) session and is shown once.
        session["new_token"] = issue_token(current_user, token_form.name.data or "")
        flash(_("Token created: copy it now, it is shown only once."), "info")
        return redirect(url_for("auth.account"))
    if request.method == "GET":
        new_token = session.pop("new_token", None)
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id)
    ).all()
    page = make_response(render_template(
        "account.html", password_form=password_form, token_form=token_form, tokens=tokens,
        new_token=new_token, name_form=name_form, language_form=language_form,
    ))
    page.headers["Cache-Control"] = "no-store"  # the token must not come back from a cache
    return page


@bp.route("/account/tokens/<int(max=2147483647):token_id>/delete", methods=["POST"])
@login_required
def delete_token(token_id: int) -> ResponseReturnValue:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    db.session.delete(token)
    db.session.commit()
    flash(_("Token revoked."), "info")
    return redirect(url_for("auth.account"))


users_cli = click.Group("users", help="Manage user accounts.")


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user access to the admin.")
@click.option("--name", help="Display name shown with their notes (else: \"author N\").")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(email: str, admin: bool, name: str | None, password_stdin: bool
                        ) -> None:
    """Create a user account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(email, password, is_admin=admin, display_name=name)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"created {'admin' if user.is_admin else 'user'} {user.email}")


def _set_active(email: str, active: bool) -> None:
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise click.ClickException(f"no user with the email {email}")
    user.active = active
    db.session.commit()
    click.echo(f"{'activated' if active else 'deactivated'} {user.email}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Disable an account: its sessions, remember-me cookies and API tokens end at once."""
    _set_active(email, False)


@users_cli.command("activate")
@click.argument("email")
def activate_command(email: str) -> None:
    """Enable a disabled account again."""
    _set_active(email, True)


@users_cli.command("list")
def list_users_command() -> None:
    """List user accounts."""
    for user in db.session.scalars(select(User).order_by(User.id)):
        role = "admin" if user.is_admin else "user"
        state = "" if user.active else " (disabled)"
        click.echo(f"{user.id}\t{user.email}\t{role}{state}\t{user.created_at:%Y-%m-%d}")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(users_cli)
