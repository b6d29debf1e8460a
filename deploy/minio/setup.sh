#!/bin/sh
# One-shot setup of the compose `minio` service, run by the `minio-setup`
# service (image minio/mc) after MinIO is healthy. Idempotent:
#   * the bucket MINIO_BUCKET, private (no anonymous access);
#   * a user MINIO_ACCESS_KEY / MINIO_SECRET_KEY for ice_pipeline, allowed only
#     what the pipeline does on that bucket (list, stat, get, put, delete and
#     multipart uploads), so the pipeline never holds the root credentials.
# Every value comes from .env; nothing is printed that contains a secret.
set -eu

: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is not set (see .env.example)}"
: "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD is not set (see .env.example)}"
: "${MINIO_ACCESS_KEY:?MINIO_ACCESS_KEY is not set (see .env.example)}"
: "${MINIO_SECRET_KEY:?MINIO_SECRET_KEY is not set (see .env.example)}"
BUCKET="${MINIO_BUCKET:-apex-ice-docs}"
MINIO_URL="${MINIO_SETUP_URL:-http://minio:9000}"
POLICY=ice-pipeline-docs

if [ "$MINIO_ACCESS_KEY" = "$MINIO_ROOT_USER" ]; then
    echo "minio setup: MINIO_ACCESS_KEY must differ from MINIO_ROOT_USER (the pipeline gets its own, limited user)" >&2
    exit 1
fi

# Secrets go to mc as arguments, not inside a URL, so any character works.
# This one-shot container is the only place they appear; mc's config lives
# in the container's throw-away home directory.
mc alias set ice "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc ready ice
mc mb --ignore-existing "ice/${BUCKET}"
mc anonymous set none "ice/${BUCKET}"

# Only sh builtins, cat and mc: the minio/mc image is minimal (no grep, no mktemp).
policy_file=/tmp/ice-pipeline-policy.json
cat > "$policy_file" <<POLICY_JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::${BUCKET}"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::${BUCKET}/*"]
    }
  ]
}
POLICY_JSON
mc admin policy create ice "$POLICY" "$policy_file"

# `user add` on an existing user only resets its secret key.
mc admin user add ice "$MINIO_ACCESS_KEY" "$MINIO_SECRET_KEY" >/dev/null
user_info="$(mc admin user info ice "$MINIO_ACCESS_KEY")"
case "$user_info" in
    *"$POLICY"*) ;;   # already attached (attaching twice is an error)
    *) mc admin policy attach ice "$POLICY" --user "$MINIO_ACCESS_KEY" ;;
esac
echo "minio setup: bucket '${BUCKET}' (private) and user '${MINIO_ACCESS_KEY}' with policy '${POLICY}' are ready"
