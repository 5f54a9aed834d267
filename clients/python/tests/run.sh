#!/bin/sh
# `npm run test:python`: the Python client's tests, with the first Python that has numpy, httpx and
# pytest: $PYTHON, then python3, then Debian's /usr/bin/python3 (where
# `apt-get install python3-numpy python3-httpx python3-pytest` puts them).
for py in ${PYTHON:-} python3 /usr/bin/python3; do
  if "$py" -c 'import numpy, httpx, pytest' 2>/dev/null; then
    exec "$py" -m pytest -q "$(dirname "$0")" "$@"
  fi
done
echo "test:python: no Python with numpy, httpx and pytest; on Debian: apt-get install python3-numpy python3-httpx python3-pytest" >&2
exit 1
