#!/bin/sh
# Runs a command, passing its stdout through, then prints its stderr and
# "exit status N, L lines on stderr" for a test's PASS_REGULAR_EXPRESSION:
# a refused input must give one line per mistake and a non-zero status.
exec 3>&1
err=$("$@" 2>&1 >&3 3>&-)
status=$?
exec 3>&-
lines=0
if [ -n "$err" ]; then
  printf '%s\n' "$err"
  lines=$(printf '%s\n' "$err" | wc -l)
fi
echo "exit status $status, $lines lines on stderr"
