#!/usr/bin/env bash
# `npm start` and `npm test` call this: set-up runs only when something is missing or changed.
exec bash "$(dirname "$0")/setup.sh" >&2
