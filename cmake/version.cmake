# Writes netbackd_version.hpp: the project version and, when the source tree is a git checkout
# of its own, the commit. Runs at configure time (included from the top CMakeLists.txt) and in
# script mode for the test of a tarball build (cmake -D... -P cmake/version.cmake).
# In:  NETBACKD_VERSION, NETBACKD_VERSION_SOURCE_DIR, NETBACKD_VERSION_HEADER.
# Out: NETBACKD_GIT_COMMIT (empty outside git), NETBACKD_GIT_DIR (empty outside git).
cmake_policy(VERSION 3.25)
set(NETBACKD_GIT_COMMIT "")
set(NETBACKD_GIT_DIR "")
find_program(NETBACKD_GIT_EXECUTABLE git)
if(NETBACKD_GIT_EXECUTABLE)
  # A tarball unpacked inside some other repository must not take that repository's commit:
  # only a work tree whose top is this source dir counts.
  execute_process(COMMAND ${NETBACKD_GIT_EXECUTABLE} -C ${NETBACKD_VERSION_SOURCE_DIR}
                    rev-parse --show-toplevel --absolute-git-dir --short=12 HEAD
    OUTPUT_VARIABLE _out RESULT_VARIABLE _rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_rc EQUAL 0)
    string(REPLACE "\n" ";" _out "${_out}")
    list(LENGTH _out _n)
    if(_n EQUAL 3)
      list(GET _out 0 _top)
      file(REAL_PATH "${_top}" _top)
      file(REAL_PATH "${NETBACKD_VERSION_SOURCE_DIR}" _src)
      if(_top STREQUAL _src)
        list(GET _out 1 NETBACKD_GIT_DIR)
        list(GET _out 2 NETBACKD_GIT_COMMIT)
      endif()
    endif()
  endif()
endif()

if(NETBACKD_GIT_COMMIT)
  set(NETBACKD_VERSION_FULL "${NETBACKD_VERSION} (git ${NETBACKD_GIT_COMMIT})")
else()
  set(NETBACKD_VERSION_FULL "${NETBACKD_VERSION}")
endif()
# configure_file rewrites the header only when its text changes, so nothing rebuilds otherwise.
configure_file(${CMAKE_CURRENT_LIST_DIR}/netbackd_version.hpp.in ${NETBACKD_VERSION_HEADER} @ONLY)
