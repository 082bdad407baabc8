#!/usr/bin/env bash
# Installs (or removes) Ferry as a systemd service.
#
#   sudo deploy/install.sh --role node            build, install, enable ferry-node
#   sudo deploy/install.sh --role hub             the same for ferry-hub
#   sudo deploy/install.sh --role both            both on one machine
#   sudo deploy/install.sh --role node --binary ./ferry     install a binary built elsewhere
#   sudo deploy/install.sh --role node --uninstall          remove; keep config and data
#   sudo deploy/install.sh --role node --uninstall --purge  remove config and data too
#   deploy/install.sh --role node --dry-run       print what would be done, change nothing
#
# Safe to run again: it replaces the binary and the unit files, never an existing config,
# and restarts a service only if it was running (that is the upgrade path; the database
# migrates itself on start). See deploy/README.md.
set -euo pipefail

PREFIX=/usr/local
BIN="$PREFIX/bin/ferry"
UNIT_DIR="$PREFIX/lib/systemd/system"   # systemd's path for locally installed units; /etc overrides it
DOC_DIR="$PREFIX/share/doc/ferry"
CONF_DIR=/etc/ferry
SERVICE_USER=ferry
# Statically linked Swift runtime: the installed binary must not depend on the toolchain
# that built it staying where it is. Override with FERRY_BUILD_FLAGS="" to link dynamically.
BUILD_FLAGS=${FERRY_BUILD_FLAGS-"--static-swift-stdlib"}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

roles=()
uninstall=no
purge=no
dry_run=no
binary=""

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --role)
      [ $# -ge 2 ] || die "--role needs node, hub or both"
      case "$2" in
        node | hub) roles+=("$2") ;;
        both) roles+=(node hub) ;;
        *) die "--role must be node, hub or both (got '$2')" ;;
      esac
      shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary="$2"; shift 2 ;;
    --uninstall) uninstall=yes; shift ;;
    --purge) purge=yes; shift ;;
    --dry-run) dry_run=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ ${#roles[@]} -gt 0 ] || die "say which service: --role node, --role hub or --role both (see --help)"
[ "$purge" = no ] || [ "$uninstall" = yes ] || die "--purge only goes with --uninstall"
if [ "$dry_run" = no ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root (sudo $0 …), or add --dry-run to see what it would do"
fi

# Prints a command, then runs it unless --dry-run.
run() {
  echo "+ $*"
  [ "$dry_run" = yes ] || "$@"
}
say() { echo "== $*"; }

unit_name() { echo "ferry-$1"; }
state_dir() { [ "$1" = node ] && echo /var/lib/ferry || echo /var/lib/ferry-hub; }

is_active() { systemctl is-active --quiet "$1" 2>/dev/null; }

# "yes" if a Ferry unit is installed for a role not named on the command line.
other_roles_installed() {
  local role
  for role in node hub; do
    case " ${roles[*]} " in *" $role "*) continue ;; esac
    if [ -e "$UNIT_DIR/$(unit_name "$role").service" ]; then echo yes; return; fi
  done
  echo no
}

install_binary() {
  local built="$binary"
  if [ -z "$built" ]; then
    say "building ferry (release)"
    command -v swift >/dev/null || die "swift is not on PATH (sudo resets it: try sudo env PATH=\"\$PATH\" $0 …, or build elsewhere and pass --binary)"
    local build=(swift build -c release --product ferry)
    # shellcheck disable=SC2206  # flags are meant to split
    build+=($BUILD_FLAGS)
    # Build as the user who called sudo, so .build stays theirs.
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
      run runuser -u "$SUDO_USER" -- env "PATH=$PATH" bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO" "${build[@]}"
    else
      run bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO" "${build[@]}"
    fi
    built="$REPO/.build/release/ferry"
  fi
  [ "$dry_run" = yes ] || [ -x "$built" ] || die "no executable at $built"
  say "installing $built as $BIN"
  # Copy beside the target, then rename: a running daemon keeps its old file open and
  # never sees a half-written binary.
  run install -D -m 0755 "$built" "$BIN.new"
  run mv -f "$BIN.new" "$BIN"
  run install -D -m 0644 "$HERE/README.md" "$DOC_DIR/README.md"
}

ensure_user() {
  if getent passwd "$SERVICE_USER" >/dev/null; then
    echo "   user $SERVICE_USER exists"
  elif getent group "$SERVICE_USER" >/dev/null; then
    say "creating system user $SERVICE_USER (group exists)"
    run useradd --system --gid "$SERVICE_USER" --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --comment "Ferry sync" "$SERVICE_USER"
  else
    say "creating system user and group $SERVICE_USER"
    run useradd --system --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --comment "Ferry sync" "$SERVICE_USER"
  fi
}

install_role() {
  local role="$1" unit
  unit="$(unit_name "$role")"
  say "installing $unit"
  run install -d -m 0755 "$CONF_DIR"
  # The example is documentation and is always refreshed; the config is the operator's.
  run install -m 0644 "$HERE/ferry-$role.toml.example" "$CONF_DIR/$role.toml.example"
  if [ -e "$CONF_DIR/$role.toml" ]; then
    echo "   keeping existing $CONF_DIR/$role.toml (compare with $role.toml.example for new keys)"
  else
    run install -m 0640 -o root -g "$SERVICE_USER" "$HERE/ferry-$role.toml.example" "$CONF_DIR/$role.toml"
  fi
  run install -D -m 0644 "$HERE/systemd/$unit.service" "$UNIT_DIR/$unit.service"
  # systemd creates the state directory at first start (StateDirectory=); create it now so
  # the node can be enrolled, as the ferry user, before the service ever runs.
  run install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$(state_dir "$role")"
}

uninstall_role() {
  local role="$1" unit
  unit="$(unit_name "$role")"
  say "removing $unit"
  if [ -e "$UNIT_DIR/$unit.service" ]; then
    run systemctl disable --now "$unit.service"
    run rm -f "$UNIT_DIR/$unit.service"
  else
    echo "   $UNIT_DIR/$unit.service is not installed"
  fi
  if [ "$purge" = yes ]; then
    say "purging $unit's config and data"
    run rm -f "$CONF_DIR/$role.toml" "$CONF_DIR/$role.toml.example"
    run rm -rf "$(state_dir "$role")"
  else
    echo "   keeping $CONF_DIR/$role.toml and $(state_dir "$role") (add --purge to delete them)"
  fi
}

if [ "$uninstall" = yes ]; then
  [ "$purge" = no ] || echo "WARNING: --purge deletes the data directories; a node's unsynced records are lost."
  for role in "${roles[@]}"; do uninstall_role "$role"; done
  # The binary, docs and user are shared by both roles: remove them with the last one.
  if [ "$(other_roles_installed)" = no ]; then
    say "no Ferry service left: removing the binary and docs"
    run rm -f "$BIN"
    run rm -rf "$DOC_DIR"
    if [ "$purge" = yes ]; then
      run rmdir --ignore-fail-on-non-empty "$CONF_DIR"
      if getent passwd "$SERVICE_USER" >/dev/null; then run userdel "$SERVICE_USER"; fi
    fi
  fi
  run systemctl daemon-reload
  say "done"
  exit 0
fi

install_binary
ensure_user
for role in "${roles[@]}"; do install_role "$role"; done
run systemctl daemon-reload
for role in "${roles[@]}"; do
  unit="$(unit_name "$role")"
  run systemctl enable "$unit.service"
  if is_active "$unit.service"; then
    say "$unit was running: restarting it on the new binary"
    run systemctl restart "$unit.service"
  fi
done

say "done. Next steps:"
for role in "${roles[@]}"; do
  case "$role" in
    node)
      echo "   enrol once, with the hub's URL and the token from the supervisor:"
      echo "     sudo -u $SERVICE_USER $BIN node init --dir /var/lib/ferry --hub https://HUB:7700 --token TOKEN"
      echo "   then: systemctl start ferry-node; journalctl -u ferry-node -f" ;;
    hub)
      echo "   edit $CONF_DIR/hub.toml (listen), then: systemctl start ferry-hub; journalctl -u ferry-hub -f" ;;
  esac
done
