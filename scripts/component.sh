#!/bin/sh
# Runs one component (its entry under dist/, then its arguments) as `npm start` runs it: with the
# Node flags and the environment of src/launcher/node-flags.ts (test/e2e/npm-start.test.ts checks
# that a component started this way has them). exec, so that npm's signals reach the component.
entry=$1
shift
: "${MALLOC_TRIM_THRESHOLD_=131072}"
export MALLOC_TRIM_THRESHOLD_
exec node --max-semi-space-size=2 --heap-growing-percent=25 --v8-pool-size=1 "dist/$entry" "$@"
