#!/usr/bin/env bash
# Install the wallbox runtime as a systemd service on a Raspberry Pi (or any Debian-like board).
# Safe to run again: every step checks what is already there, and an existing /etc/wallbox/local.json is
# never overwritten. See docs/install.md for the steps around it (Node 20, HATs, wiring).
#
#   sudo systemd/install.sh [--start] [--can]
#
#   --start   start (or restart) the service at the end; without it the service is enabled, not started,
#             so the installer can edit /etc/wallbox/local.json first
#   --can     install the CAN bus network file (can0 at 500 kbit/s) even when the config does not name
#             inverter.driver "can-bms" yet
#
# Environment (for packaging and for the test of this script):
#   WALLBOX_PREFIX       where the code is installed (default /opt/wallbox); this checkout is copied there
#                        unless it is that directory already
#   WALLBOX_INSTALL_ROOT write every file below this directory instead of / (default empty)
#   WALLBOX_NO_SYSTEM=1  skip what changes the running system (users, groups, npm, systemctl, udevadm)
set -euo pipefail

START=0
CAN=0
for arg in "$@"; do
  case "$arg" in
    --start) START=1 ;;
    --can) CAN=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${WALLBOX_PREFIX:-/opt/wallbox}"
ROOT="${WALLBOX_INSTALL_ROOT:-}"
NO_SYSTEM="${WALLBOX_NO_SYSTEM:-0}"
ETC="$ROOT/etc/wallbox"
STATE="$ROOT/var/lib/wallbox"
UNIT="$ROOT/etc/systemd/system/wallbox.service"

say() { echo "install.sh: $*"; }
system() { if [ "$NO_SYSTEM" = 1 ]; then say "(skipped) $*"; else "$@"; fi; }

if [ "$NO_SYSTEM" != 1 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo): it creates a user, /etc/wallbox and a systemd unit" >&2
  exit 1
fi

# --- Node 20 or later -----------------------------------------------------------------------------
NODE="$(command -v node || true)"
if [ -z "$NODE" ]; then
  echo "install.sh: node not found; install Node.js 20 first (docs/install.md, step 2)" >&2
  exit 1
fi
NODE_MAJOR="$("$NODE" -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "install.sh: $NODE is Node $("$NODE" --version); the runtime needs Node 20 or later (docs/install.md, step 2)" >&2
  exit 1
fi

# --- the code in $PREFIX, dependencies and the production build -------------------------------------
DEST="$ROOT$PREFIX"
if [ "$(cd "$SRC" && pwd -P)" != "$(mkdir -p "$DEST" && cd "$DEST" && pwd -P)" ]; then
  say "copying $SRC to $DEST"
  # node_modules and dist are rebuilt for this board (native addons: better-sqlite3, onoff, socketcan)
  tar -C "$SRC" --exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./.data -cf - . | tar -C "$DEST" -xf -
fi
if [ "$NO_SYSTEM" != 1 ]; then
  if [ ! -d "$DEST/node_modules" ] || [ "$DEST/package-lock.json" -nt "$DEST/node_modules/.package-lock.json" ]; then
    say "npm ci in $DEST (native addons build from source: needs g++, make, python3)"
    (cd "$DEST" && npm ci --no-audit --no-fund)
  fi
  say "npm run build (dist/)"
  (cd "$DEST" && npm run --silent build)
else
  say "(skipped) npm ci and npm run build in $DEST"
fi

# --- group gpio, user wallbox ----------------------------------------------------------------------
# Raspberry Pi OS has a gpio group and udev rules giving it the GPIO lines; a plain Debian has neither.
if ! getent group gpio >/dev/null 2>&1; then
  say "creating system group gpio and a udev rule giving it the GPIO lines"
  system groupadd --system gpio
  mkdir -p "$ROOT/etc/udev/rules.d"
  cat > "$ROOT/etc/udev/rules.d/60-wallbox-gpio.rules" <<'RULES'
# Written by wallbox systemd/install.sh: the gpio group may use the GPIO character devices and sysfs lines
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="gpio", ACTION=="add", PROGRAM="/bin/sh -c 'chgrp -R gpio /sys/class/gpio /sys/devices/platform/*/gpio* 2>/dev/null; chmod -R g+w /sys/class/gpio /sys/devices/platform/*/gpio* 2>/dev/null; true'"
RULES
  system udevadm control --reload-rules
  system udevadm trigger --subsystem-match=gpio
fi
if ! getent group wallbox >/dev/null 2>&1; then
  say "creating system group wallbox"
  system groupadd --system wallbox
fi
if ! getent passwd wallbox >/dev/null 2>&1; then
  say "creating system user wallbox (groups gpio, dialout)"
  system useradd --system --gid wallbox --groups gpio,dialout --home-dir /var/lib/wallbox --no-create-home --shell /usr/sbin/nologin wallbox
else
  system usermod -a -G gpio,dialout wallbox
fi
# the person installing may read status and the ledger without sudo (group wallbox: the state directory
# and the status socket are group-accessible)
if [ -n "${SUDO_USER:-}" ] && [ "${SUDO_USER}" != root ]; then
  say "adding $SUDO_USER to group wallbox (log in again for it to apply)"
  system usermod -a -G wallbox "$SUDO_USER"
fi

# --- directories and the config ------------------------------------------------------------------------
mkdir -p "$ETC" "$STATE"
own() { if [ "$NO_SYSTEM" != 1 ]; then chown "$@"; fi; }
own root:wallbox "$ETC"
chmod 0750 "$ETC"
own wallbox:wallbox "$STATE"
chmod 0750 "$STATE"
if [ ! -e "$ETC/local.json" ]; then
  say "writing $ETC/local.json from config/example-install.json: edit it for this install (docs/configuration.md)"
  cp "$SRC/config/example-install.json" "$ETC/local.json"
  own root:wallbox "$ETC/local.json"
  chmod 0640 "$ETC/local.json"
else
  say "keeping the existing $ETC/local.json"
fi

# --- the wallbox command on PATH ---------------------------------------------------------------------
mkdir -p "$ROOT/usr/local/bin"
cat > "$ROOT/usr/local/bin/wallbox" <<WRAPPER
#!/bin/sh
# Written by wallbox systemd/install.sh: the wallbox command with the installed config
: "\${WALLBOX_CONFIG:=/etc/wallbox/local.json}"
export WALLBOX_CONFIG
exec "$NODE" "$PREFIX/bin/wallbox.mjs" "\$@"
WRAPPER
chmod 0755 "$ROOT/usr/local/bin/wallbox"

# --- CAN bus (only for the CAN inverter profile) -------------------------------------------------------
if [ "$CAN" = 1 ] || grep -q '"can-bms"' "$ETC/local.json" 2>/dev/null; then
  say "installing /etc/systemd/network/80-can0.network (can0 at 500 kbit/s)"
  mkdir -p "$ROOT/etc/systemd/network"
  cp "$SRC/systemd/80-can0.network" "$ROOT/etc/systemd/network/80-can0.network"
  system systemctl enable --now systemd-networkd
fi

# --- the unit ------------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$UNIT")"
sed -e "s#/usr/bin/node#$NODE#" -e "s#/opt/wallbox#$PREFIX#g" "$SRC/systemd/wallbox.service" > "$UNIT.tmp"
if [ -e "$UNIT" ] && cmp -s "$UNIT.tmp" "$UNIT"; then
  rm -f "$UNIT.tmp"
  say "unit unchanged"
else
  mv "$UNIT.tmp" "$UNIT"
  say "installed $UNIT"
fi
if command -v systemd-analyze >/dev/null 2>&1 && [ "$NO_SYSTEM" != 1 ]; then systemd-analyze verify "$UNIT"; fi
system systemctl daemon-reload
system systemctl enable wallbox.service
if [ "$START" = 1 ]; then
  system systemctl restart wallbox.service
  say "started; check with: wallbox status   and   journalctl -u wallbox -f"
else
  say "enabled, not started: edit $ETC/local.json, then: sudo systemctl start wallbox"
fi
