# Sanitizer builds for every target, and the switch for the libFuzzer targets in tests/fuzz.
# Included by the top-level CMakeLists.txt right after project(), before any target is defined:
#
#   -DBATON_SANITIZE=address,undefined   GCC or clang: the test suites under ASan + UBSan
#   -DBATON_FUZZ=ON                      clang only: libFuzzer coverage for every target, and the
#                                        fuzz targets (with -DBATON_SANITIZE=address,undefined)
#
# Every compile and link gets -fsanitize=<list> -fno-omit-frame-pointer, and with `undefined`
# -fno-sanitize-recover=undefined, so the first report ends the process (a test fails, not only
# prints). Use -DCMAKE_BUILD_TYPE=RelWithDebInfo for reports with file:line. The test suites need
# (.ci/run sets them):
#
#   LSAN_OPTIONS=suppressions=<repo>/cmake/sanitizer_suppressions/lsan.supp:print_suppressions=0
#   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
#   ASAN_OPTIONS=detect_leaks=1     programs that never call MPI_Init (the unit and layers suites)
#   ASAN_OPTIONS=detect_leaks=0     programs that do (`baton`: the e2e and mpi suites)
#
# Open MPI 4.1 leaks by design at MPI_Finalize, mostly inside its plugins (mca_*.so), which it then
# unloads, and Debian's libraries have no frame pointers: ASan's fast unwinder stops at a frame with
# no name to suppress. fast_unwind_on_malloc=0 records whole stacks and made those leaks
# suppressible, but the e2e suite then took 16 min instead of 3; so programs that start MPI are
# checked for memory errors and undefined behaviour, and leaks are checked in the suites without MPI.

set(BATON_SANITIZE "" CACHE STRING
    "Sanitizers for every target, comma-separated, e.g. address,undefined (also: leak, thread); empty: none")
option(BATON_FUZZ "Build the libFuzzer targets of tests/fuzz (needs clang; use with -DBATON_SANITIZE=address,undefined)" OFF)


if(BATON_SANITIZE)
  string(REPLACE "," ";" _baton_sanitizers "${BATON_SANITIZE}")
  foreach(_s IN LISTS _baton_sanitizers)
    if(NOT _s MATCHES "^(address|undefined|leak|thread)$")
      message(FATAL_ERROR "BATON_SANITIZE=${BATON_SANITIZE}: unknown sanitizer '${_s}'; use a comma-separated "
                          "list of address, undefined, leak and thread (e.g. -DBATON_SANITIZE=address,undefined)")
    endif()
  endforeach()
  if("thread" IN_LIST _baton_sanitizers AND ("address" IN_LIST _baton_sanitizers OR "leak" IN_LIST _baton_sanitizers))
    message(FATAL_ERROR "BATON_SANITIZE=${BATON_SANITIZE}: thread cannot be combined with address or leak; "
                        "configure a separate build for -DBATON_SANITIZE=thread")
  endif()
  set(_baton_sanitizer_flags -fsanitize=${BATON_SANITIZE} -fno-omit-frame-pointer)
  if("undefined" IN_LIST _baton_sanitizers)
    list(APPEND _baton_sanitizer_flags -fno-sanitize-recover=undefined)
  endif()

  # Fail at configure, naming the package, when the compiler's runtime libraries are missing.
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "")
  set(CMAKE_REQUIRED_QUIET ON)
  set(CMAKE_REQUIRED_LINK_OPTIONS ${_baton_sanitizer_flags})
  string(REPLACE ";" " " CMAKE_REQUIRED_FLAGS "${_baton_sanitizer_flags}")
  check_cxx_source_compiles("int main() { return 0; }" BATON_SANITIZERS_LINK)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  unset(CMAKE_REQUIRED_QUIET)
  if(NOT BATON_SANITIZERS_LINK)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      set(_hint "install GCC's sanitizer runtimes (Debian: apt-get install libasan8 libubsan1 liblsan0 libtsan2)")
    else()
      set(_hint "install clang's runtimes (Debian: apt-get install libclang-rt-14-dev)")
    endif()
    message(FATAL_ERROR "${CMAKE_CXX_COMPILER} cannot link a program with ${_baton_sanitizer_flags}; ${_hint}, "
                        "or configure without -DBATON_SANITIZE (see CMakeFiles/CMakeError.log)")
  endif()

  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${_baton_sanitizer_flags}>")
  add_link_options(${_baton_sanitizer_flags})

  string(REPLACE ";" " " _shown "${_baton_sanitizer_flags}")
  message(STATUS "  BATON_SANITIZE=${BATON_SANITIZE}: ${_shown} on every target")
endif()

if(BATON_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "BATON_FUZZ=ON needs clang for libFuzzer, but the C++ compiler is ${CMAKE_CXX_COMPILER_ID}; "
                        "configure a separate build with -DCMAKE_CXX_COMPILER=clang++-14 "
                        "-DBATON_SANITIZE=address,undefined -DBATON_FUZZ=ON (or run tests/fuzz/run.sh)")
  endif()
  # Coverage feedback from every library the targets call into; the targets themselves link
  # -fsanitize=fuzzer (libFuzzer's main) in tests/fuzz/CMakeLists.txt.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>")
  add_link_options(-fsanitize=fuzzer-no-link)
  message(STATUS "  BATON_FUZZ=ON: libFuzzer coverage on every target; fuzz targets in tests/fuzz")
endif()
