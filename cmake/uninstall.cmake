# SPDX-License-Identifier: MIT
# `cmake --build <build> --target uninstall`: remove every file the last `cmake --install` of the
# build tree installed (-D MANIFEST=<build>/install_manifest.txt), then the folders it leaves
# empty under the prefix's matgrad-specific folders.
if(NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "uninstall: ${MANIFEST} does not exist (nothing was installed from this build tree)")
endif()
file(STRINGS "${MANIFEST}" _files)
set(_dirs "")
foreach(_f IN LISTS _files)
  if(EXISTS "${_f}" OR IS_SYMLINK "${_f}")
    message(STATUS "Removing ${_f}")
    file(REMOVE "${_f}")
    get_filename_component(_d "${_f}" DIRECTORY)
    list(APPEND _dirs "${_d}")
  endif()
endforeach()
# the folders only matgrad installs into (include/matgrad, lib/cmake/matgrad), when now empty
list(REMOVE_DUPLICATES _dirs)
foreach(_d IN LISTS _dirs)
  get_filename_component(_name "${_d}" NAME)
  if(_name STREQUAL "matgrad" AND IS_DIRECTORY "${_d}")
    file(GLOB _left "${_d}/*")
    if(NOT _left)
      message(STATUS "Removing ${_d}/")
      file(REMOVE_RECURSE "${_d}")
    endif()
  endif()
endforeach()
