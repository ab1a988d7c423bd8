# syntax=docker/dockerfile:1
# flaskstack: Nginx + uWSGI + Flask in one image. The notes site is served when /web/web_data
# holds no app; a site laid out for tiangolo/uwsgi-nginx-flask (/app/main.py...) is served as
# that image served it (docs/start/tiangolo.md).
# Build:  flaskstack image build [--python 3.13|3.11]   (tags nginx_flask_server:python3.X)
# Debian 13 (Python 3.13, Nginx 1.26) by default; Debian 12 (Python 3.11, Nginx 1.22) with
#   --build-arg BASE_IMAGE=debian:bookworm-slim
ARG BASE_IMAGE=debian:trixie-slim

# ---- build: compilers, -dev packages and npm live here only ----------------------------------
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev gcc libc6-dev libssl-dev libpcre2-dev npm ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Browser assets (CKEditor 4.22.1, Swagger UI) from npm, pinned by the site's package-lock.json.
COPY sites/notes/package.json sites/notes/package-lock.json sites/notes/assets.sh sites/notes/
RUN mkdir -p sites/notes/src/notes/static
# An optional build secret "pipca" (a CA bundle) for networks that re-sign HTTPS.
RUN --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/pipca; fi \
 && bash sites/notes/assets.sh && rm -rf sites/notes/node_modules
# Two distributions: the kit (the repository root) and the notes site (sites/notes).
COPY pyproject.toml README.md ./
COPY scripts/install-uwsgi.sh scripts/
COPY src src
COPY sites/notes/pyproject.toml sites/notes/README.md sites/notes/
COPY sites/notes/src sites/notes/src
RUN --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
 && python3 -m venv /opt/flaskstack \
 && bash scripts/install-uwsgi.sh /opt/flaskstack/bin/python \
 && /opt/flaskstack/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile \
      . "./sites/notes[mssql]"
# The interface's message catalogues (.po in the source) compiled into the installed package.
RUN /opt/flaskstack/bin/pybabel -q compile -d "$(/opt/flaskstack/bin/python -c \
      'import importlib.util; print(importlib.util.find_spec("notes").submodule_search_locations[0])' \
      )/translations"
# The site's own venv, first on PATH: a Dockerfile FROM this image that runs `pip install`
# installs into it, never into the kit's. It starts with Flask, as tiangolo's image did.
RUN --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
 && python3 -m venv /opt/site \
 && /opt/site/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile flask
# The kit's venv is never installed into: its pip (and Python 3.11's setuptools) go
RUN /opt/flaskstack/bin/python -m pip uninstall -q -y pip setuptools 2>/dev/null || true
# Bytecode compiled here and kept: the workers run as www-data and cannot write it under /opt, so
# without it each worker would compile the site and its libraries at every start. Unchecked
# hashes: an image's files never change, so Python need not compare source times.
RUN /opt/flaskstack/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/flaskstack/lib /opt/site/lib
# Precompressed .gz copies of the static files (the site's and Flask-Admin's) for gzip_static.
RUN /opt/flaskstack/bin/flaskstack precompress
# An empty notes database at the latest migration, made by the real upgrade: the prestart copies
# it onto a new data volume instead of importing the whole site to migrate an empty database.
RUN NOTES_DATA_DIR=/tmp/empty /opt/flaskstack/bin/python -m flask --app notes db upgrade \
 && /opt/flaskstack/bin/python -c "import notes_prestart, pathlib; \
      notes_prestart.save_template(pathlib.Path('/tmp/empty/notes.db'))" \
 && rm -rf /tmp/empty

# ---- runtime: Python, Nginx, the venvs; nothing else ---------------------------------------
FROM ${BASE_IMAGE}
# No documentation, man pages or translations in the image (dpkg skips them at install).
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      > /etc/dpkg/dpkg.cfg.d/01-flaskstack-nodoc
# uWSGI (compiled in the build stage) links libpython3.X, libssl3 and libpcre2-8. For a whole
# nginx.conf of tiangolo's image: the user nginx (its `user nginx;`, in group www-data to reach
# uWSGI's socket) and its log files going to the container's logs.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 nginx-light libnginx-mod-http-brotli-static ca-certificates libpcre2-8-0 \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "lib$(readlink -f /usr/bin/python3 | xargs basename)" \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && groupadd --system nginx \
 && useradd --system --gid nginx --groups www-data --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY --from=build /opt/flaskstack /opt/flaskstack
COPY --from=build /opt/site /opt/site
RUN mkdir -p /web/web_data /web/data && chown www-data:www-data /web/data
# The port (85) and the site directory (the working directory) are the settings' defaults;
# /opt/site/bin first: python, pip and flask are the site's; a site named by FLASKSTACK_APP runs
# with that venv (the notes site, the default, always runs in the kit's).
ENV PATH=/opt/site/bin:/opt/flaskstack/bin:$PATH \
    FLASKSTACK_VENV=/opt/site \
    PYTHONUNBUFFERED=1 \
    FLASKSTACK_RUN_DIR=/run/flaskstack \
    NOTES_DATA_DIR=/web/data
WORKDIR /web/web_data
VOLUME /web/data
# 85: the notes site and sites of our own layout; 80: a tiangolo site (LISTEN_PORT)
EXPOSE 85 80
# Starts as root to bind its port; Nginx and uWSGI workers run as www-data (FLASKSTACK_USER).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["flaskstack", "health"]
STOPSIGNAL SIGTERM
CMD ["flaskstack", "serve"]
