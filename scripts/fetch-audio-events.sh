#!/usr/bin/env bash
# Fetches the real recordings behind the audio-event development set (models/audio-events/
# devset.tsv) from Debian 12 (bookworm) packages and converts each listed file to 16 kHz mono
# 16-bit WAV at DEST/sources/<package>/<path inside the package>.wav, the form
# `vigil-train audio-events make-data` mixes from. The recordings are not committed: their
# licences (GPL, CC-BY-SA, GFDL, …; DEST/sources/LICENCES.tsv lists them) allow local use, not
# redistribution in this repository.
#
# Usage: scripts/fetch-audio-events.sh [DEST] [--parts train,validation,test]
#                                      [--deb-cache DIR] [--list FILE] [--jobs N]
#   DEST          default data/audio-events
#   --parts       fetch only the files of these parts (default: all three)
#   --deb-cache   look for pkg_version_*.deb here first and keep downloaded debs here, so a
#                 rerun or another part does not download them again
#   --list        default models/audio-events/devset.tsv
#   --jobs        parallel ffmpeg conversions (default: the number of cores)
#
# Each package is pinned to the version in the list (`apt-get download pkg=version`); if apt
# does not offer that version the script stops and names it rather than mixing from other
# recordings. Idempotent: converted files are skipped, and a package whose files are all there
# is not downloaded. Needs apt-get and dpkg-deb (Debian 12); installs ffmpeg if missing (root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=""
parts="train,validation,test"
cache=""
list="$root/models/audio-events/devset.tsv"
jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --parts) parts=${2:?--parts needs a value}; shift 2 ;;
    --parts=*) parts=${1#*=}; shift ;;
    --deb-cache) cache=${2:?--deb-cache needs a directory}; shift 2 ;;
    --deb-cache=*) cache=${1#*=}; shift ;;
    --list) list=${2:?--list needs a file}; shift 2 ;;
    --list=*) list=${1#*=}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch-audio-events: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$dest" ] || { echo "fetch-audio-events: one DEST only (got $dest and $1)" >&2; exit 2; }
       dest=$1; shift ;;
  esac
done
dest=${dest:-data/audio-events}
sources="$dest/sources"
start=$(date +%s)

for part in ${parts//,/ }; do
  case "$part" in train|validation|test) ;;
    *) echo "fetch-audio-events: unknown part '$part' (train, validation, test)" >&2; exit 2 ;;
  esac
done
[ -f "$list" ] || { echo "fetch-audio-events: no file list at $list" >&2; exit 1; }
command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null || {
  echo "fetch-audio-events: needs apt-get and dpkg-deb (Debian 12)" >&2; exit 1; }
# ffmpeg converts; unzip opens the game archives (nexuiz .pk3, warzone2100 .wz) that some
# listed files sit in, written `archive!/member` in the list.
missing=""
for tool in ffmpeg unzip; do command -v $tool >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || { echo "fetch-audio-events: missing$missing; install (apt-get install$missing) or run as root" >&2; exit 1; }
  echo "installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-audio-events.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$sources"
[ -z "$cache" ] || mkdir -p "$cache"

# package<TAB>version<TAB>path<TAB>licence for the chosen parts, header and unknown parts
# refused with the line number.
awk -F'\t' -v parts="$parts" -v list="$list" '
  BEGIN { n = split(parts, p, ","); for (i = 1; i <= n; i++) want[p[i]] = 1 }
  NR == 1 { if ($1 != "part" || $3 != "package" || $5 != "path") {
              printf "%s: line 1: expected the header part, role, package, version, path, …\n", list > "/dev/stderr"; exit 1 }
            next }
  NF != 7 { printf "%s: line %d: %d columns, expected 7\n", list, NR, NF > "/dev/stderr"; exit 1 }
  $1 != "train" && $1 != "validation" && $1 != "test" {
            printf "%s: line %d: unknown part %s\n", list, NR, $1 > "/dev/stderr"; exit 1 }
  ($1 in want) { print $3 "\t" $4 "\t" $5 "\t" $7 }
' "$list" > "$work/rows.tsv"
[ -s "$work/rows.tsv" ] || { echo "fetch-audio-events: no files for parts $parts in $list" >&2; exit 1; }

apt_updated=0
downloaded=0
current=""
fail() { echo "fetch-audio-events: FAILED on package ${current:-?}: $*" >&2; exit 1; }

version_available() { # pkg version (apt-cache show pkg=version exits 0 even when it is not)
  apt-cache madison "$1" 2>/dev/null | awk -F' [|] ' -v v="$2" '$2 == v { found = 1 } END { exit !found }'
}

fetch_deb() { # pkg version -> sets deb to the .deb path
  local pkg=$1 version=$2 dir found
  if [ -n "$cache" ]; then
    found=$(find "$cache" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)
    [ -z "$found" ] || { deb=$found; return; }
    dir=$cache
  else
    dir="$work/debs"; mkdir -p "$dir"
  fi
  if ! version_available "$pkg" "$version" && [ $apt_updated = 0 ]; then
    echo "  apt-get update (apt does not know $pkg=$version yet)" >&2
    apt_updated=1
    apt-get update -qq >&2 || fail "apt-get update failed"
  fi
  version_available "$pkg" "$version" || fail "apt offers no $pkg=$version (it has: $(apt-cache madison "$pkg" 2>/dev/null | awk -F' [|] ' '{print $2}' | xargs)); the list pins this version so that the set's recordings do not change"
  # As root apt warns that it downloads unsandboxed into a folder _apt cannot write; harmless.
  (cd "$dir" && apt-get download -qq "$pkg=$version" 2>&1 | grep -v 'unsandboxed as root' >&2
   exit "${PIPESTATUS[0]}") || fail "apt-get download $pkg=$version failed"
  found=$(find "$dir" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)
  [ -n "$found" ] || fail "apt-get download left no ${pkg}_${version}_*.deb in $dir"
  downloaded=$((downloaded + $(stat -c %s "$found")))
  deb=$found
}

convert_one() { # extracted_root sources package path
  local in="$1/$4" out="$2/$3/$4.wav"
  case "$4" in *'!/'*) in="$1/${4%%!/*}.unzipped/${4#*!/}" ;; esac
  [ -f "$in" ] || { echo "missing in the package: $4" >&2; return 1; }
  mkdir -p "$(dirname "$out")"
  ffmpeg -nostdin -v error -y -i "$in" -ar 16000 -ac 1 -c:a pcm_s16le -f wav "$out.part" \
    && mv "$out.part" "$out" || { rm -f "$out.part"; echo "ffmpeg failed on $4" >&2; return 1; }
}
export -f convert_one

packages=$(cut -f1,2 "$work/rows.tsv" | sort -u)
count=$(echo "$packages" | wc -l)
i=0
while IFS=$'\t' read -r pkg version; do
  i=$((i + 1)); current="$pkg=$version"
  awk -F'\t' -v p="$pkg" -v v="$version" '$1 == p && $2 == v { print $3 }' "$work/rows.tsv" \
    | while IFS= read -r path; do [ -f "$sources/$pkg/$path.wav" ] || printf '%s\n' "$path"; done \
    > "$work/todo"
  total=$(awk -F'\t' -v p="$pkg" -v v="$version" '$1 == p && $2 == v' "$work/rows.tsv" | wc -l)
  todo=$(wc -l < "$work/todo")
  if [ "$todo" = 0 ]; then
    echo "[$i/$count] $pkg $version: all $total files present"
    continue
  fi
  echo "[$i/$count] $pkg $version: converting $todo of $total files"
  fetch_deb "$pkg" "$version"
  rm -rf "$work/x"; mkdir -p "$work/x"
  dpkg-deb -x "$deb" "$work/x" || fail "dpkg-deb -x $deb failed"
  # Members of archives inside the package, each archive opened once.
  for archive in $(grep -F '!/' "$work/todo" | sed 's/!\/.*//' | sort -u); do
    [ -f "$work/x/$archive" ] || fail "no archive $archive in the package"
    grep -F "$archive!/" "$work/todo" | sed 's/^[^!]*!\///; s/[][*?\\]/\\&/g' \
      | xargs -d '\n' unzip -qq -o "$work/x/$archive" -d "$work/x/$archive.unzipped" \
      || fail "unzip of $archive failed"
  done
  tr '\n' '\0' < "$work/todo" \
    | xargs -0 -P "$jobs" -I{} bash -c 'convert_one "$@"' _ "$work/x" "$sources" "$pkg" {} \
    || fail "conversion failed (see above)"
  rm -rf "$work/x"
  [ -n "$cache" ] || rm -f "$deb"
done <<< "$packages"
current=""

# Licences: one row per package, version and licence (a package may carry several), merged
# with rows an earlier run wrote for other parts.
{
  [ -f "$sources/LICENCES.tsv" ] && tail -n +2 "$sources/LICENCES.tsv"
  cut -f1,2,4 "$work/rows.tsv"
} | sort -u > "$work/licences"
{ printf 'package\tversion\tlicence\n'; cat "$work/licences"; } > "$sources/LICENCES.tsv"

files=$(find "$sources" -name '*.wav' | wc -l)
size=$(du -sh "$sources" | cut -f1)
echo "done in $(( $(date +%s) - start )) s: $files WAV files, $size in $sources;" \
  "downloaded $(( downloaded / 1048576 )) MiB of debs${cache:+ (others reused from $cache)}"
