#!/usr/bin/env bash
# Fetch the browser assets pinned in package-lock.json (beside this file) from npm and place them
# in the notes package (src/notes/static/vendor/, ignored by git, shipped in the wheel).
# Safe to run again: does nothing when the lock file has not changed.
set -euo pipefail
cd "$(dirname "$0")"
vendor=src/notes/static/vendor
stamp="$vendor/.stamp-$(sha256sum package-lock.json | cut -c1-16)"
[ -f "$stamp" ] && exit 0
echo "assets: npm ci" >&2
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
rm -rf "$vendor"
mkdir -p "$vendor"
# CKEditor 4: drop the plugins that call remote services (spell checkers) and the samples.
cp -r node_modules/ckeditor4 "$vendor/ckeditor"
rm -rf "$vendor/ckeditor/samples" "$vendor/ckeditor/plugins/scayt" "$vendor/ckeditor/plugins/wsc" \
       "$vendor/ckeditor/plugins/exportpdf" "$vendor/ckeditor/plugins/cloudservices" \
       "$vendor/ckeditor/plugins/easyimage" "$vendor/ckeditor/plugins/embed" \
       "$vendor/ckeditor/plugins/embedsemantic" "$vendor/ckeditor/plugins/embedbase" \
       "$vendor/ckeditor/plugins/autoembed" "$vendor/ckeditor/plugins/mathjax"
mkdir -p "$vendor/swagger-ui"
for f in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png; do
    cp "node_modules/swagger-ui-dist/$f" "$vendor/swagger-ui/"
done
touch "$stamp"
