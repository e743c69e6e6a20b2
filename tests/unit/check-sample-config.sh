#!/bin/sh
# dist/sealmail.conf must be exactly what the option table produces, so the
# documented defaults and bounds can never drift from the code.
# usage: check-sample-config.sh SEALMAIL_BINARY DIST_SAMPLE
"$1" check-config --sample | diff -u "$2" - || {
  echo "dist/sealmail.conf is stale: regenerate with 'sealmail check-config --sample'" >&2
  exit 1
}
