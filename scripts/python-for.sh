#!/usr/bin/env bash
# Prints the path of a Python interpreter of the version asked (3.12, 3.13, ...): the one on
# PATH when it runs, else the newest pyenv build of it. Fails, saying so, when there is none.
set -euo pipefail
version="$1"
if command -v "python$version" >/dev/null && "python$version" -c pass 2>/dev/null; then
    command -v "python$version"
    exit 0
fi
root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for candidate in $(ls -d "$root"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
    "$candidate" -c pass && { echo "$candidate"; exit 0; }
done
echo "no Python $version here: install it (pyenv install $version) or put python$version on PATH" >&2
exit 1
