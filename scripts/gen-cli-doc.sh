#!/usr/bin/env bash
# Regenerate docs/cli.md from the binary's own help (the option tables are the source).
set -euo pipefail
cd "$(dirname "$0")/.."
TW=build/tunewise
echo '# CLI reference'; echo
echo 'Generated from the option tables (`tunewise help <command>`); regenerate with'
echo '`scripts/gen-cli-doc.sh > docs/cli.md`.'; echo
echo '```'; $TW help; echo '```'
for c in audit "classic train" "classic eval" eval prompt tune "lora merge" score split validate convert "model info" "model init" tokenize run bench serve report gate history "review export" "review import" verdict decide; do
  echo; echo "## tunewise $c"; echo; echo '```'; $TW help $c; echo '```'
done
