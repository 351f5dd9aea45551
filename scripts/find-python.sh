#!/usr/bin/env sh
# Print the path of a working pythonX.Y interpreter. pyenv installs a shim for every
# version but the shim only runs the selected one, so each candidate is test-run.
want="${1:-3.12}"
for c in "python$want" "$(pyenv root 2>/dev/null)"/versions/"$want".*/bin/"python$want" "$HOME"/.pyenv/versions/"$want".*/bin/"python$want"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  "$p" -c 'import sys' >/dev/null 2>&1 && { echo "$p"; exit 0; }
done
echo "no working python$want found (pyenv versions or PATH)" >&2
exit 1
