#!/usr/bin/env bash
# Unpacks the .deb files that jobs/offline/download.sh fetched under PREFIX, without root or network
# (an air-gapped node), so that baton builds and runs against them: writes PREFIX/env.sh (PATH,
# LD_LIBRARY_PATH, CMAKE_PREFIX_PATH, Open MPI's relocation) and prints the cmake arguments to use.
set -euo pipefail

usage="Usage: jobs/offline/unpack.sh DIR PREFIX  (DIR: the .deb files of download.sh; PREFIX: a folder to unpack them into)"
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
(($# == 2)) || { echo "Expected 2 arguments, got $#: $usage" >&2; exit 2; }
dir="$1"
prefix="$2"
[[ -d "$dir" ]] || { echo "DIR '$dir' is not a folder: give the folder that jobs/offline/download.sh filled. $usage" >&2; exit 2; }
shopt -s nullglob
debs=("$dir"/*.deb)
((${#debs[@]})) || { echo "DIR '$dir' holds no .deb files: run jobs/offline/download.sh DIR on a connected Debian 12 machine first." >&2; exit 2; }
[[ "$prefix" != "/" && "$prefix" != "/usr" ]] || { echo "PREFIX '$prefix' would unpack over the system: give a folder of its own, e.g. \$HOME/baton-deps." >&2; exit 2; }
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
arch="x86_64-linux-gnu"
lib="$prefix/usr/lib/$arch"

# 1. Unpack. dpkg-deb when the node has it, else ar + tar (a .deb is an ar archive of tarballs).
extract() {  # extract DEB MEMBER(data|control) DEST
  local deb="$1" member="$2" dest="$3"
  if command -v dpkg-deb >/dev/null; then
    if [[ "$member" == data ]]; then dpkg-deb -x "$deb" "$dest"; else dpkg-deb -e "$deb" "$dest"; fi
    return
  fi
  command -v ar >/dev/null || { echo "Neither dpkg-deb nor ar (binutils) is here, and one of them unpacks .deb files: install binutils." >&2; exit 1; }
  local name
  name="$(ar t "$deb" | grep -m1 "^$member\.tar")"
  mkdir -p "$dest"
  case "$name" in
    *.xz) ar p "$deb" "$name" | tar -xJf - -C "$dest" ;;
    *.zst) ar p "$deb" "$name" | zstd -dc | tar -xf - -C "$dest" ;;
    *.gz) ar p "$deb" "$name" | tar -xzf - -C "$dest" ;;
    *) ar p "$deb" "$name" | tar -xf - -C "$dest" ;;
  esac
}
control="$(mktemp -d)"
trap 'rm -rf "$control"' EXIT
for deb in "${debs[@]}"; do
  extract "$deb" data "$prefix"
  extract "$deb" control "$control/$(basename "$deb" .deb)"
done
echo "Unpacked ${#debs[@]} .deb files under $prefix"

# 2. The links that maintainer scripts make with update-alternatives (mpirun, mpicxx, mpi.h's folder...),
# where both ends were unpacked here: "--install LINK NAME PATH PRIORITY" and "--slave LINK NAME PATH".
alternatives="$(cat "$control"/*/postinst 2>/dev/null | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
  grep -E '^[[:space:]]*update-alternatives' |
  grep -oE -- '--(install|slave)[[:space:]]+/[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+/[^[:space:]]+' || true)"
while read -r _ link _ path; do
  if [[ -n "$link" && -e "$prefix$path" && ! -e "$prefix$link" && ! -L "$prefix$link" ]]; then
    mkdir -p "$(dirname "$prefix$link")"
    ln -s "$(realpath -s -m --relative-to="$(dirname "$prefix$link")" "$prefix$path")" "$prefix$link"
  fi
done <<<"$alternatives"

# 3. Absolute symlinks point into PREFIX (as relative links). A library link whose target is a base
# package (libz.so -> /lib/.../libz.so.1.2.13) points at that library's soname on this system instead.
repaired=0
unresolved=()
while IFS= read -r -d '' link; do
  target="$(readlink "$link")"
  [[ "$target" == /* ]] || continue
  inside="$prefix$target"
  if [[ ! -e "$inside" && "$(basename "$target")" =~ ^(lib[^/]*\.so\.[0-9]+) ]]; then
    soname="${BASH_REMATCH[1]}"
    for d in "$lib" "$prefix/lib/$arch" "/usr/lib/$arch" "/lib/$arch" /usr/lib64 /lib64; do
      if [[ -e "$d/$soname" ]]; then inside="$d/$soname"; break; fi
    done
  fi
  if [[ "$inside" == "$prefix"/* ]]; then
    ln -sfn "$(realpath -s -m --relative-to="$(dirname "$link")" "$inside")" "$link"
  else
    ln -sfn "$inside" "$link"
  fi
  repaired=$((repaired + 1))
  [[ -e "$link" || "$link" == */share/doc/* || "$link" == */share/man/* ]] || unresolved+=("${link#"$prefix"/} -> $target")
done < <(find "$prefix" -type l -print0)
echo "Repaired $repaired absolute symlinks."
((${#unresolved[@]} == 0)) || printf 'warning: still dangling: %s\n' "${unresolved[@]}" >&2

# 4. The environment. Open MPI 4.1 relocates with OPAL_PREFIX: Debian's libdir, pkglibdir (its
# plugins), includedir and pkgdatadir (mpicxx's wrapper data) are under ${prefix}; without it
# mpicxx says "Cannot open configuration file /usr/share/openmpi/mpicxx-wrapper-data.txt".
# Debian's sysconfdir is the absolute /etc/openmpi (its default MCA parameters), so OPAL_SYSCONFDIR.
# PMIx (Debian: /usr/lib/ARCH/pmix2) ignores OPAL_PREFIX and its own PMIX_PREFIX (its dirs are
# absolute): its plugins come from an MCA parameter, its help texts from PMIX_PKGDATADIR.
libpath="$lib:$lib/openmpi/lib"
[[ -d "$prefix/lib/$arch" ]] && libpath="$libpath:$prefix/lib/$arch"
cat >"$prefix/env.sh" <<EOF
# Written by jobs/offline/unpack.sh: source it (. $prefix/env.sh) to build and run baton
# against the Debian packages unpacked under $prefix.
export BATON_OFFLINE_PREFIX='$prefix'
export PATH="\$BATON_OFFLINE_PREFIX/usr/bin\${PATH:+:\$PATH}"
export LD_LIBRARY_PATH="$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="\$BATON_OFFLINE_PREFIX/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
export OPAL_PREFIX="\$BATON_OFFLINE_PREFIX/usr"
export OPAL_SYSCONFDIR="\$BATON_OFFLINE_PREFIX/etc/openmpi"
export PMIX_MCA_mca_base_component_path="\$BATON_OFFLINE_PREFIX/usr/lib/$arch/pmix2/lib/pmix"
export PMIX_PKGDATADIR="\$BATON_OFFLINE_PREFIX/usr/lib/$arch/pmix2/share/pmix"
# hwloc's plugins are not carried; do not load a system copy's from /usr/lib/$arch/hwloc
export HWLOC_PLUGINS_PATH="\$BATON_OFFLINE_PREFIX/usr/lib/$arch/hwloc"
# Without ssh (or rsh) mpirun stops at once ("plm_rsh_agent: ssh : rsh ... could not be found"),
# even on one node, which never calls it; 'false' lets one-node runs start (many hosts still need
# ssh, --mca plm_rsh_agent, or Slurm).
if ! command -v ssh >/dev/null 2>&1 && ! command -v rsh >/dev/null 2>&1; then
  export OMPI_MCA_plm_rsh_agent=false
fi
EOF
# shellcheck source=/dev/null
. "$prefix/env.sh"

missing_libs() { { LC_ALL=C ldd "$1" 2>/dev/null || true; } | awk '/=> not found/ { print $1 }' | sort -u | tr '\n' ' '; }

# 5. DIR/fallback holds base libraries (libudev1, which hwloc links) that a minimal image may lack:
# each goes into PREFIX only when a library here needs it and the node does not have it.
fallback_debs=("$dir"/fallback/*.deb)
if ((${#fallback_debs[@]})); then
  needed=" "
  for f in "$lib"/*.so.*; do
    if [[ -f "$f" && ! -L "$f" ]]; then needed+="$(missing_libs "$f")"; fi
  done
  for deb in "${fallback_debs[@]}"; do
    tmp="$control/fallback-$(basename "$deb" .deb)"
    extract "$deb" data "$tmp"
    while IFS= read -r -d '' so; do
      [[ "$needed" == *" $(basename "$so") "* ]] || continue
      cp -a "$(dirname "$so")/$(basename "$so")"* "$lib/"
      echo "Installed $(basename "$so") from $(basename "$deb"): this node lacks it."
    done < <(find "$tmp" -name 'lib*.so.[0-9]*' -type l -print0)
  done
fi

# 6. Plugins whose libraries are neither here nor on this system (download.sh leaves out the
# InfiniBand, Omni-Path, libfabric and UCX transports) are set aside, so that Open MPI does not
# try them and warn; shared memory and TCP remain. PREFIX/disabled-plugins keeps them.
disabled=()
for plugin in "$lib"/openmpi/lib/openmpi3/*.so "$lib"/pmix2/lib/pmix/*.so; do
  [[ -f "$plugin" ]] || continue
  need="$(missing_libs "$plugin")"
  [[ -n "$need" ]] || continue
  rel="${plugin#"$prefix"/}"
  mkdir -p "$prefix/disabled-plugins/$(dirname "$rel")"
  mv "$plugin" "$prefix/disabled-plugins/$rel"
  disabled+=("$(basename "$plugin" .so) (${need% })")
done
((${#disabled[@]} == 0)) || { echo "Set aside ${#disabled[@]} plugins whose libraries are missing:"; printf '  %s\n' "${disabled[@]}"; }

# 7. What baton needs must resolve: every library it links and Open MPI's programs.
failed=()
for f in "$lib"/libmpi.so.40 "$lib"/libmpi_cxx.so.40 "$lib"/libdnnl.so.2 "$lib"/libboost_program_options.so.1.* \
         "$lib"/libOpenCL.so.1 "$lib"/libpmix.so.2 "$lib"/libbenchmark.so.1* "$lib"/openmpi/lib/openmpi3/mca_pmix_ext3x.so \
         "$prefix"/usr/bin/orterun "$prefix"/usr/bin/orted "$prefix"/usr/bin/opal_wrapper; do
  [[ -e "$f" ]] || continue
  need="$(missing_libs "$f")"
  [[ -z "$need" ]] || failed+=("${f#"$prefix"/} needs ${need% }")
done
for f in libmpi.so.40 libdnnl.so.2 libOpenCL.so.1; do
  [[ -e "$lib/$f" ]] || failed+=("$f is not under $lib (was $dir filled by download.sh?)")
done
if ((${#failed[@]})); then
  printf '  %s\n' "${failed[@]}" >&2
  echo "The libraries above are missing on this node: add the Debian packages that hold them to 'fallbacks' (or take them out of 'skipped') in jobs/offline/download.sh, download again and unpack again." >&2
  exit 1
fi

# 8. The cmake arguments (env.sh's CMAKE_PREFIX_PATH and PATH would find the same; explicit is
# surer). MPI: the prefix's mpicxx wrapper, which runs this node's g++ (or \$OMPI_CXX).
cmake_args=(-DCMAKE_PREFIX_PATH="$prefix/usr"
            -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx"
            -DMPIEXEC_EXECUTABLE="$prefix/usr/bin/mpiexec")
# CUDA on the GPU node: cuDNN from PyTorch's nvidia-cudnn wheel ships only libcudnn.so.9, which
# find_library(cudnn) does not match, so name it (\$PYTHON: the venv's python, default python3).
cudnn_dir="$("${PYTHON:-python3}" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
if [[ -n "$cudnn_dir" && -f "$cudnn_dir/include/cudnn.h" ]]; then
  cudnn_lib="$(find "$cudnn_dir/lib" -maxdepth 1 -name 'libcudnn.so*' 2>/dev/null | sort | head -1)"
  if [[ -n "$cudnn_lib" ]]; then
    cmake_args+=(-DCUDNN_LIBRARY="$cudnn_lib" -DCUDNN_INCLUDE_DIR="$cudnn_dir/include")
    echo "cuDNN: $cudnn_lib (from ${PYTHON:-python3}'s nvidia.cudnn); its arguments are in the list below."
  fi
fi
printf '%s\n' "${cmake_args[@]}" >"$prefix/cmake-args.txt"
echo
echo "Wrote $prefix/env.sh and $prefix/cmake-args.txt. To build baton:"
echo "  . $prefix/env.sh"
echo "  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release $(printf '%q ' "${cmake_args[@]}")"
echo "  cmake --build build"
if [[ -d "$prefix/usr/share/datasets/fashion-mnist" ]]; then
  echo "Fashion-MNIST is in $prefix/usr/share/datasets/fashion-mnist (baton train ... --data-dir that folder)."
fi
