# syntax=docker/dockerfile:1
# flaskstack: Nginx + uWSGI + Flask in one image. The notes site is served when /web/web_data
# holds no app. Build:  docker build -t nginx_flask_server .   (or: flaskstack image build)
ARG BASE_IMAGE=debian:bookworm-slim

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
# Bytecode compiled here and kept: the workers run as www-data and cannot write it under /opt, so
# without it each worker would compile the site and its libraries at every start. Unchecked
# hashes: an image's files never change, so Python need not compare source times.
RUN /opt/flaskstack/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/flaskstack/lib
# Precompressed .gz copies of the static files (the site's and Flask-Admin's) for gzip_static.
RUN /opt/flaskstack/bin/flaskstack precompress
# An empty notes database at the latest migration, made by the real upgrade: the prestart copies
# it onto a new data volume instead of importing the whole site to migrate an empty database.
RUN NOTES_DATA_DIR=/tmp/empty /opt/flaskstack/bin/python -m flask --app notes db upgrade \
 && /opt/flaskstack/bin/python -c "import notes_prestart, pathlib; \
      notes_prestart.save_template(pathlib.Path('/tmp/empty/notes.db'))" \
 && rm -rf /tmp/empty

# ---- runtime: Python, Nginx, the venv; nothing else ----------------------------------------
FROM ${BASE_IMAGE}
# uWSGI (compiled in the build stage) links libpython3.X, libssl3 and libpcre2-8
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 nginx-light libnginx-mod-http-brotli-static ca-certificates libpcre2-8-0 \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "lib$(readlink -f /usr/bin/python3 | xargs basename)" \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
COPY --from=build /opt/flaskstack /opt/flaskstack
RUN mkdir -p /web/web_data /web/data && chown www-data:www-data /web/data
ENV PATH=/opt/flaskstack/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLASKSTACK_PORT=85 \
    FLASKSTACK_APP_DIR=/web/web_data \
    FLASKSTACK_RUN_DIR=/run/flaskstack \
    NOTES_DATA_DIR=/web/data
WORKDIR /web/web_data
VOLUME /web/data
EXPOSE 85
# Starts as root to bind port 85; Nginx and uWSGI workers run as www-data (FLASKSTACK_USER).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["flaskstack", "health"]
STOPSIGNAL SIGTERM
CMD ["flaskstack", "serve"]
