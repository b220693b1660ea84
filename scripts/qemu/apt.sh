# shellcheck shell=bash
# Private apt configuration for the arm64/trixie pieces of the QEMU image.
# Sourced by build.sh. Everything lives under $APT_DIR (build/qemu/apt); the
# host's own sources, lists, cache and dpkg status are never read or written.

APT_DIR=${APT_DIR:?}
KEYRINGS=/usr/share/keyrings

apt_setup() {
    mkdir -p "$APT_DIR"/etc/sources.list.d "$APT_DIR"/etc/preferences.d \
        "$APT_DIR"/etc/apt.conf.d "$APT_DIR"/lists/partial \
        "$APT_DIR"/cache/archives/partial "$APT_DIR"/state
    [ -f "$APT_DIR/state/status" ] || : >"$APT_DIR/state/status"
    local k
    for k in debian-archive-trixie-stable debian-archive-trixie-automatic \
             debian-archive-trixie-security-automatic; do
        [ -r "$KEYRINGS/$k.gpg" ] || die "the trixie archive key $KEYRINGS/$k.gpg is missing;" \
            "install debian-archive-keyring (bookworm's ships the trixie keys)"
    done
    # trixie + trixie-updates + trixie-security: the guest userland floats on
    # all three (scripts/qemu/userland); the secure pins come from any of them.
    local sources="$APT_DIR/etc/trixie.sources" want
    want="Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Architectures: arm64
Signed-By: $KEYRINGS/debian-archive-trixie-stable.gpg,$KEYRINGS/debian-archive-trixie-automatic.gpg

Types: deb deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Architectures: arm64
Signed-By: $KEYRINGS/debian-archive-trixie-security-automatic.gpg"
    if [ ! -f "$sources" ] || [ "$(cat "$sources")" != "$want" ]; then
        printf '%s\n' "$want" >"$sources"
        rm -f "$APT_DIR/.updated"
    fi
}

# apt-get / apt-cache with only the private configuration.
APT_OPTS=()
apt_opts() {
    APT_OPTS=(
        -o "Dir::Etc::SourceList=$APT_DIR/etc/trixie.sources"
        -o "Dir::Etc::SourceParts=$APT_DIR/etc/sources.list.d"
        -o "Dir::Etc::Preferences=$APT_DIR/etc/preferences"
        -o "Dir::Etc::PreferencesParts=$APT_DIR/etc/preferences.d"
        -o "Dir::State=$APT_DIR/state"
        -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::State::status=$APT_DIR/state/status"
        -o "Dir::Cache=$APT_DIR/cache"
        -o "Dir::Cache::Archives=$APT_DIR/cache/archives"
        -o "APT::Architecture=arm64"
        -o "APT::Architectures=arm64"
        -o "APT::Get::List-Cleanup=0"
        -o "Debug::NoLocking=1"
        -o "Acquire::Languages=none"
        -o "Acquire::GzipIndexes=false"
    )
    # Downloads land in build/, which the unprivileged _apt user may not reach.
    [ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o "APT::Sandbox::User=root")
}
apt_opts
papt_get() { apt-get "${APT_OPTS[@]}" "$@"; }

# Refresh the index at most once a day (or when forced).
apt_update() {
    local stamp="$APT_DIR/.updated"
    if [ "${1:-}" = force ] || [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
        echo "qemu/build: apt-get update (private trixie/arm64 index in $APT_DIR)"
        papt_get -qq --error-on=any update || die "apt-get update of the private trixie index failed" \
            "(network, or a bad signature: see above)"
        touch "$stamp"
    fi
}
