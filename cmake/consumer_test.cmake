# SPDX-License-Identifier: MIT
# ctest cmake_package_consumer: install this build tree into a fresh prefix, then configure,
# build and run examples/cpp against it with find_package(matgrad CONFIG), then uninstall it
# (cmake/uninstall.cmake, what the uninstall target runs) and check that no file is left.
# -D BUILD_DIR, SOURCE_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM, PREFIX_PATH (where Eigen is; '|'-separated)
string(REPLACE "|" ";" PREFIX_PATH "${PREFIX_PATH}")
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
set(gen_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND gen_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/examples/cpp" -B "${WORK_DIR}/build"
                        ${gen_args} -DCMAKE_BUILD_TYPE=Release
                        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix;${PREFIX_PATH}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer with find_package(matgrad) failed (${rc})")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer failed (${rc})")
endif()
execute_process(COMMAND "${WORK_DIR}/build/example" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer's gradient is wrong (${rc})")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -D MANIFEST=${BUILD_DIR}/install_manifest.txt
                        -P "${SOURCE_DIR}/cmake/uninstall.cmake" RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "uninstall failed (${rc})")
endif()
file(GLOB_RECURSE left LIST_DIRECTORIES false "${WORK_DIR}/prefix/*")
if(left)
  message(FATAL_ERROR "uninstall left files behind: ${left}")
endif()
