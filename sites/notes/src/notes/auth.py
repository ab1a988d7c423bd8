"""Accounts: register, log in/out, change password, API tokens, and the ``users`` CLI."""

from __future__ import annotations

import sys
from datetime import timedelta

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
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import delete, func, select
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from .extensions import db, login_manager
from .models import ApiToken, LoginFailure, User, utcnow
from .services import issue_token

bp = Blueprint("auth", __name__)
_hasher = PasswordHasher()  # argon2id: memory-hard
WINDOW = timedelta(minutes=15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, password: str, is_admin: bool = False) -> User:
    """Add and commit a user; ``ValueError`` if the email is taken or the password short."""
    email = normalise_email(email)
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    if db.session.scalar(select(User).where(User.email == email)):
        raise ValueError(f"a user with the email {email} exists already")
    user = User(email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.session.add(user)
    db.session.commit()
    return user


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see this page."


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Remember me")


class RegisterForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("password", "Passwords differ.")],
    )


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


def _too_many(keys: list[str]) -> bool:
    limit = current_app.config["NOTES_LOGIN_ATTEMPTS"]
    since = utcnow() - WINDOW
    for key in keys:
        count = db.session.scalar(
            select(func.count()).where(LoginFailure.key == key, LoginFailure.at > since)
        )
        if (count or 0) >= limit:
            return True
    return False


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("views.index"))
    form = LoginForm()
    if form.validate_on_submit():
        email = normalise_email(form.email.data or "")
        keys = [f"ip:{request.remote_addr}", f"email:{email}"]
        if _too_many(keys):
            flash("Too many failed logins: wait 15 minutes and try again.", "error")
            return render_template("login.html", form=form), 429
        user = db.session.scalar(select(User).where(User.email == email))
        if user and user.active and verify_password(user.password_hash, form.password.data or ""):
            db.session.execute(delete(LoginFailure).where(LoginFailure.key == keys[1]))
            db.session.commit()
            login_user(user, remember=form.remember.data)
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("views.index")
            return redirect(target)
        db.session.add_all([LoginFailure(key=key) for key in keys])
        db.session.commit()
        flash("Wrong email or password.", "error")
    return render_template("login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("views.index"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    if current_app.config["NOTES_REGISTRATION"] != "open":
        abort(403, "Registration is closed on this site.")
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data or "", form.password.data or "")
        except ValueError as e:
            form.email.errors = [*form.email.errors, str(e)]
        else:
            login_user(user)
            flash("Welcome! Your account is ready.", "info")
            return redirect(url_for("views.my_notes"))
    return render_template("register.html", form=form)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> ResponseReturnValue:
    password_form = PasswordForm(prefix="pw")
    token_form = TokenForm(prefix="tok")
    new_token = None
    if "pw-password" in request.form and password_form.validate_on_submit():
        if not verify_password(current_user.password_hash, password_form.current.data or ""):
            password_form.current.errors = ["This is not your current password."]
        else:
            current_user.password_hash = hash_password(password_form.password.data or "")
            db.session.commit()
            flash("Your password is changed.", "info")
            return redirect(url_for("auth.account"))
    if "tok-name" in request.form and token_form.validate_on_submit():
        # POST/redirect/GET: a reload shows the page again, it does not make a second token.
        # The token waits in the (server-side) session and is shown once.
        session["new_token"] = issue_token(current_user, token_form.name.data or "")
        flash("Token created: copy it now, it is shown only once.", "info")
        return redirect(url_for("auth.account"))
    if request.method == "GET":
        new_token = session.pop("new_token", None)
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id)
    ).all()
    page = make_response(render_template(
        "account.html", password_form=password_form, token_form=token_form, tokens=tokens,
        new_token=new_token,
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
    flash("Token revoked.", "info")
    return redirect(url_for("auth.account"))


users_cli = click.Group("users", help="Manage user accounts.")


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user access to the admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(email: str, admin: bool, password_stdin: bool) -> None:
    """Create a user account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(email, password, is_admin=admin)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"created {'admin' if user.is_admin else 'user'} {user.email}")


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
