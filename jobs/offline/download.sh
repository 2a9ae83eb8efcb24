#!/usr/bin/env bash
# Downloads the Debian 12 .deb files that baton builds and runs its tests with (plus their
# dependency closure, minus what a base Linux system with a compiler already has) into DIR, for an
# air-gapped node that unpacks them with jobs/offline/unpack.sh. Run it on a connected Debian 12.
set -euo pipefail

usage="Usage: jobs/offline/download.sh [--with-fashion-mnist] [--full-boost] DIR"
with_fashion=0
full_boost=0
dir=""
while (($#)); do
  case "$1" in
    --with-fashion-mnist) with_fashion=1 ;;
    --full-boost) full_boost=1 ;;
    -h|--help)
      cat <<EOF
$usage
  DIR                   folder for the .deb files (created; .debs this script did not choose must not be in it)
  --with-fashion-mnist  also take dataset-fashion-mnist (29.5 MiB: the real data of the e2e tests)
  --full-boost          take Debian's whole libboost1.74-dev (9.1 MiB) instead of a .deb built here
                        with only the Boost headers baton's sources include (about 0.5 MiB)
Environment: BATON_OFFLINE_MAX_MIB (default 60) is the most the .deb files may weigh together.
EOF
      exit 0 ;;
    -*) echo "Unknown option '$1': the options are --with-fashion-mnist and --full-boost ($usage)." >&2; exit 2 ;;
    *)
      [[ -z "$dir" ]] || { echo "Give one DIR only (got '$dir' and '$1'): $usage" >&2; exit 2; }
      dir="$1" ;;
  esac
  shift
done
[[ -n "$dir" ]] || { echo "Missing DIR, the folder to download the .deb files into: $usage" >&2; exit 2; }
max_mib="${BATON_OFFLINE_MAX_MIB:-60}"
[[ "$max_mib" =~ ^[0-9]+$ ]] || { echo "BATON_OFFLINE_MAX_MIB='$max_mib' is not a whole number of MiB: set it to e.g. 60." >&2; exit 2; }
for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run this script on a Debian 12 machine with apt." >&2; exit 1; }
done
((full_boost)) || command -v g++ >/dev/null || {
  echo "g++ is missing, and it picks the Boost headers baton needs: install g++ or pass --full-boost." >&2; exit 1; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# What baton builds and tests with: jobs/setup.sh's list without cmake, g++, make (the node has
# its own compiler and CMake), procps and iproute2 (base tools), googletest (only GoogleTest's
# sources: libgtest-dev has the headers, static libraries and CMake package).
wanted=(openmpi-bin libopenmpi-dev libdnnl-dev ocl-icd-opencl-dev libboost-program-options-dev
        nlohmann-json3-dev zlib1g-dev libgtest-dev libbenchmark-dev)
((with_fashion)) && wanted+=(dataset-fashion-mnist)

# What the node already has: every Essential or Priority: required package, the C and C++
# compilers (libc6-dev, libstdc++-dev, libgomp1, binutils come with them), make and python3.
base_seeds=(libc6 libstdc++6 libgcc-s1 zlib1g gcc g++ make python3)

# Base libraries that baton's packages load but that a minimal container image may lack (hwloc
# links libudev): downloaded into DIR/fallback; unpack.sh installs one only where it is missing.
fallbacks=(libudev1)

# Dependencies that Debian declares but baton does not need; they are treated as installed, so
# neither they nor what only they pull in are downloaded.
#   Fortran MPI bindings:           gfortran-12 gfortran
#   ssh for mpirun on other hosts:  openssh-client (one node, Slurm's srun and --mca plm_rsh_agent need none)
#   libopenmpi-dev's static-link and documentation extras (baton links libmpi.so through mpicxx):
#                                   libibverbs-dev libhwloc-dev libevent-dev libpmix-dev libjs-jquery libjs-jquery-ui
#   hwloc's optional PCI/X11/OpenCL/NVML plugins (they bring libxml2, ICU, X11):  libhwloc-plugins
#   Open MPI's InfiniBand/Omni-Path/libfabric/UCX transports and netlink routing: shared memory
#   (vader) and TCP run without them; unpack.sh sets their plugins aside:
#                                   libfabric1 libucx0 libpsm2-2 libpsm-infinipath1 libibverbs1 ibverbs-providers
#                                   librdmacm1 libnl-3-200 libnl-route-3-200
#   GoogleTest's sources:           googletest
skipped=(gfortran-12 gfortran openssh-client libibverbs-dev libhwloc-dev libevent-dev libpmix-dev
         libjs-jquery libjs-jquery-ui libhwloc-plugins libfabric1 libucx0 libpsm2-2 libpsm-infinipath1
         libibverbs1 ibverbs-providers librdmacm1 libnl-3-200 libnl-route-3-200 googletest)
((full_boost)) || skipped+=(libboost1.74-dev)   # replaced below by the headers baton includes

# A private dpkg status file and apt preferences: the dependency closure is computed as if only
# the base system were installed, whatever this machine has; the skipped packages are "installed"
# without their dependencies and pinned there. The package lists are this machine's (apt-get update).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: >"$work/empty-status"
mkdir "$work/preferences.d"
: >"$work/preferences"
apt_opts=(-o Debug::NoLocking=1 -o Dir::Etc::preferences="$work/preferences" -o Dir::Etc::preferencesparts="$work/preferences.d")
# "Inst name (version release [arch])" lines of a simulated install -> "name version arch"
resolve() {
  local status="$1"; shift
  local out
  if ! out="$(apt-get "${apt_opts[@]}" -o Dir::State::status="$status" -s -q install --no-install-recommends "$@" 2>&1)"; then
    printf '%s\n' "$out" | grep -E '^(E:| )' >&2 || true
    echo "apt could not resolve the packages above: run 'sudo apt-get update' on this Debian 12 machine and try again." >&2
    exit 1
  fi
  printf '%s\n' "$out" | awk '/^Inst / { if ($3 ~ /^\[/) { print "apt wants to replace the installed " $2 ", which must not happen" > "/dev/stderr"; exit 1 }
                                       v = $3; sub(/^\(/, "", v); a = $NF; gsub(/[][)]/, "", a); print $2, v, a }'
}
# dpkg status stanzas, marked installed, for "name version ..." lines; strip=1 drops their relations
status_stanzas() {
  local strip="$1"
  mapfile -t pvs < <(awk '{ print $1 "=" $2 }')
  ((${#pvs[@]})) || return 0
  apt-cache "${apt_opts[@]}" -o Dir::State::status="$work/empty-status" show "${pvs[@]}" | awk -v strip="$strip" '
    BEGIN { RS = ""; FS = "\n" }
    {
      name = ""
      for (i = 1; i <= NF; i++) if ($i ~ /^Package: /) name = substr($i, 10)
      if (name in seen) next
      seen[name] = 1
      print "Status: install ok installed"
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^ /) { if (keep) print $i; continue }
        keep = 1
        if ($i ~ /^(Description|Description-md5|Tag|Homepage|Filename|Size|MD5sum|SHA256|Section|Maintainer|Source):/) keep = 0
        if (strip && $i ~ /^(Depends|Pre-Depends|Recommends|Suggests|Conflicts|Breaks|Replaces|Enhances):/) keep = 0
        if (keep) print $i
      }
      print ""
    }'
}
candidate() { apt-cache "${apt_opts[@]}" -o Dir::State::status="$work/empty-status" policy "$1" | awk '/Candidate:/ { print $2 }'; }

mapfile -t required < <(apt-cache "${apt_opts[@]}" -o Dir::State::status="$work/empty-status" dumpavail |
  awk 'BEGIN { RS = ""; FS = "\n" } /\nPriority: required/ || /\nEssential: yes/ {
         for (i = 1; i <= NF; i++) if ($i ~ /^Package: /) { sub(/^Package: /, "", $i); print $i } }' | sort -u)
((${#required[@]})) || { echo "apt knows no Debian packages here: run 'sudo apt-get update' and try again." >&2; exit 1; }
resolve "$work/empty-status" "${required[@]}" "${base_seeds[@]}" >"$work/base.txt"
for p in "${fallbacks[@]}"; do
  grep -m1 "^$p " "$work/base.txt" || { echo "The fallback $p is not in the base system apt computed: remove it from 'fallbacks' in $0." >&2; exit 1; }
done >"$work/fallback.txt"
status_stanzas 0 <"$work/base.txt" >"$work/status"
boost_version="$(candidate libboost1.74-dev)"
for p in "${skipped[@]}"; do
  v="$(candidate "$p")"
  if [[ -n "$v" && "$v" != "(none)" ]]; then echo "$p $v"; fi
done | status_stanzas 1 >>"$work/status"
printf 'Package: %s\nPin: release o=Debian\nPin-Priority: -1\n' "${skipped[*]}" >"$work/preferences"
resolve "$work/status" "${wanted[@]}" >"$work/closure.txt"
[[ -s "$work/closure.txt" ]] || { echo "apt chose no packages to download, which cannot be right: check 'apt-cache policy libdnnl-dev'." >&2; exit 1; }

# .debs left by an earlier run that this run does not choose are removed; others stop the script.
chosen_files=()
while read -r name version arch; do
  chosen_files+=("${name}_${version//:/%3a}_${arch}.deb")
done <"$work/closure.txt"
while read -r name version arch; do
  chosen_files+=("fallback/${name}_${version//:/%3a}_${arch}.deb")
done <"$work/fallback.txt"
subset_deb=""
if ((! full_boost)); then
  subset_deb="baton-boost1.74-headers_${boost_version//:/%3a}_all.deb"
  chosen_files+=("$subset_deb")
fi
shopt -s nullglob
for f in "$dir"/*.deb "$dir"/fallback/*.deb; do
  b="${f#"$dir"/}"
  [[ " ${chosen_files[*]} " == *" $b "* ]] && continue
  if [[ -f "$dir/packages.txt" ]] && grep -qxF "$b" "$dir/packages.txt"; then
    rm -f "$f"
  else
    echo "$dir holds $b, which this script did not download: remove it or choose an empty DIR." >&2
    exit 1
  fi
done

sandbox=()
[[ $(id -u) -eq 0 ]] && sandbox=(-o APT::Sandbox::User=root)
missing_pv=()
while read -r name version arch; do
  [[ -f "$dir/${name}_${version//:/%3a}_${arch}.deb" ]] || missing_pv+=("$name=$version")
done <"$work/closure.txt"
if ((${#missing_pv[@]})); then
  echo "Downloading ${#missing_pv[@]} of ${#chosen_files[@]} .deb files into $dir ..."
  (cd "$dir" && apt-get -q "${sandbox[@]}" download "${missing_pv[@]}" >/dev/null)
fi
mkdir -p "$dir/fallback"
while read -r name version arch; do
  [[ -f "$dir/fallback/${name}_${version//:/%3a}_${arch}.deb" ]] ||
    (cd "$dir/fallback" && apt-get -q "${sandbox[@]}" download "$name=$version" >/dev/null)
done <"$work/fallback.txt"

# Boost: Boost.Program_options' headers live only in libboost1.74-dev (138 MiB unpacked), so the
# package itself is unavoidable; baton includes a few hundred of its files. Build a .deb of exactly
# the headers that baton's boost includes pull in (under C++17 and C++20), all of boost/config,
# and the package's CMake files (BoostConfig.cmake, boost_headers), so find_package(Boost) works.
# The subset is built again when baton's boost includes changed since DIR/boost-includes.txt.
build_subset=0
if ((! full_boost)); then
  if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    list_sources() { git -C "$repo" ls-files --cached --others --exclude-standard -- '*.cpp' '*.hpp' '*.h' '*.cc' '*.cu' '*.cuh'; }
  else
    list_sources() { (cd "$repo" && find . -path './build*' -prune -o -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' \) -print); }
  fi
  mapfile -t includes < <(list_sources | (cd "$repo" && while read -r f; do
      if [[ -f "$f" ]]; then grep -hoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<boost/[^>]+>' "$f" || true; fi
    done) | sed -E 's/.*<(boost\/[^>]+)>.*/\1/' | sort -u)
  ((${#includes[@]})) || includes=(boost/program_options.hpp)
  if [[ -f "$dir/$subset_deb" && -f "$dir/boost-includes.txt" ]] &&
     [[ "$(cat "$dir/boost-includes.txt")" == "$(printf '%s\n' "${includes[@]}")" ]]; then
    build_subset=0
  else
    build_subset=1
  fi
fi
if ((! full_boost && build_subset)); then
  (cd "$work" && apt-get -q "${sandbox[@]}" download "libboost1.74-dev=$boost_version" >/dev/null)
  full="$work/boost-full"
  dpkg-deb -x "$work"/libboost1.74-dev_*.deb "$full"
  printf '#include <%s>\n' "${includes[@]}" >"$work/boost_includes.cpp"
  for std in c++17 c++20; do
    g++ -std="$std" -I"$full/usr/include" -M "$work/boost_includes.cpp" -o "$work/deps.$std"
  done
  pkg="$work/boost-subset"
  mkdir -p "$pkg/DEBIAN" "$pkg/usr/include" "$pkg/usr/share/doc/baton-boost1.74-headers"
  cat "$work"/deps.c++* | sed 's/ \\$//' | tr ' ' '\n' | grep "^$full/usr/include/boost/" | sort -u |
    sed "s|^$full/||" >"$work/boost_files.txt"
  (cd "$full" && find usr/include/boost/config -type f && find usr/lib -path '*/cmake/*' \( -type f -o -type l \)) >>"$work/boost_files.txt"
  (cd "$full" && sort -u "$work/boost_files.txt" | tar -cf - -T -) | tar -xf - -C "$pkg"
  cp "$full/usr/share/doc/libboost1.74-dev/copyright" "$pkg/usr/share/doc/baton-boost1.74-headers/"
  cat >"$pkg/DEBIAN/control" <<EOF
Package: baton-boost1.74-headers
Version: $boost_version
Architecture: all
Maintainer: baton <baton@localhost>
Provides: libboost1.74-dev (= $boost_version)
Description: Boost 1.74 headers that baton includes, taken from libboost1.74-dev $boost_version
 Made by jobs/offline/download.sh from Debian's libboost1.74-dev: the headers that baton's
 '#include <boost/...>' lines pull in with g++, all of boost/config, and the CMake package files.
EOF
  dpkg-deb --root-owner-group -Zxz -b "$pkg" "$dir/$subset_deb" >/dev/null
  printf '%s\n' "${includes[@]}" >"$dir/boost-includes.txt"
  echo "Built $subset_deb: $(sort -u "$work/boost_files.txt" | grep -c '^usr/include/boost/') of $(find "$full/usr/include/boost" -type f | wc -l) Boost headers (for: ${includes[*]})."
fi

printf '%s\n' "${chosen_files[@]}" >"$dir/packages.txt"

# The table, biggest first, and the total against the limit.
total=0
rows=()
for f in "${chosen_files[@]}"; do
  [[ -f "$dir/$f" ]] || { echo "$f was not downloaded into $dir: check the apt messages above and run again." >&2; exit 1; }
  size=$(stat -c %s "$dir/$f")
  total=$((total + size))
  name="$(dpkg-deb -f "$dir/$f" Package)"
  [[ "$f" == fallback/* ]] && name="$name(fallback)"
  rows+=("$size $name $(dpkg-deb -f "$dir/$f" Version)")
done
printf '%-34s %-28s %10s\n' "package" "version" "MiB"
printf '%s\n' "${rows[@]}" | sort -rn | awk '{ printf "%-34s %-28s %10.2f\n", $2, $3, $1 / 1048576 }'
awk -v t="$total" -v n="${#rows[@]}" 'BEGIN { printf "%-34s %-28s %10.2f\n", "total (" n " files)", "", t / 1048576 }'
if ((total > max_mib * 1048576)); then
  echo "The .deb files total $(awk -v t="$total" 'BEGIN{printf "%.1f", t/1048576}') MiB, over the ${max_mib} MiB limit: $( ((with_fashion || full_boost)) && echo "drop --with-fashion-mnist or --full-boost, " || echo "leave out a package (see 'skipped' in $0), ")or raise BATON_OFFLINE_MAX_MIB if the node can take more." >&2
  exit 1
fi
echo "Carry $dir beside the source tree; on the node run: jobs/offline/unpack.sh $dir PREFIX"
