#!/bin/sh
# Browser tests need Debian's chromium; installed by the browser-tests work (issue 4).
exit 0
