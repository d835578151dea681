#!/bin/sh
# Start Alertmanager with the webhook placeholder of alertmanager.yml replaced by
# $ALERTMANAGER_WEBHOOK_URL (Alertmanager cannot read environment variables itself).
# The rendered copy lives in the data directory; the mounted original stays read-only.
# The paths are overridable so that the tests run this very script natively.
set -eu
config=${ALERTMANAGER_CONFIG:-/etc/alertmanager/alertmanager.yml}
datadir=${ALERTMANAGER_DATA:-/alertmanager}
binary=${ALERTMANAGER_BIN:-/bin/alertmanager}
rendered=$datadir/alertmanager.rendered.yml
placeholder='http://alertmanager-webhook.invalid/'
if [ -n "${ALERTMANAGER_WEBHOOK_URL:-}" ]; then
    # Escape the characters sed treats specially in a replacement (& \ and the | delimiter).
    url=$(printf '%s' "$ALERTMANAGER_WEBHOOK_URL" | sed 's/[&|\\]/\\&/g')
    sed "s|$placeholder|$url|g" "$config" > "$rendered"
else
    echo "entrypoint: ALERTMANAGER_WEBHOOK_URL is not set; webhook notifications will fail" >&2
    cp "$config" "$rendered"
fi
exec "$binary" --config.file="$rendered" --storage.path="$datadir" "$@"
