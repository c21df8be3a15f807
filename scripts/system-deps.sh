#!/usr/bin/env bash
# The system packages the book's PDF and browser tests need (Debian names). Installs them
# with apt-get when they are missing and we are root; otherwise says what is missing.
set -euo pipefail
PACKAGES=(make latexmk texlive-xetex texlive-latex-recommended texlive-latex-extra
          texlive-fonts-recommended fonts-freefont-otf poppler-utils chromium)
missing=()
command -v latexmk >/dev/null   || missing+=(latexmk)
command -v xelatex >/dev/null   || missing+=(texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended)
fc-list 2>/dev/null | grep -q FreeSerif || missing+=(fonts-freefont-otf)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
[ -x /usr/bin/chromium ]        || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${PACKAGES[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
else
  echo "note: missing system packages for the PDF and browser tests: ${missing[*]}" >&2
  echo "      on Debian/Ubuntu: sudo apt-get install ${PACKAGES[*]}" >&2
fi
