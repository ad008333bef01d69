# The ROS 2 PyPI wheels export CMake targets whose include directories point at the
# machine the wheels were built on (e.g. /opt/python/...). CMake refuses imported
# targets with missing include paths, so, at the end of configuring the top directory,
# the entries that do not exist here are dropped. A regular ROS installation has none
# and is left unchanged.
#
# Used by CMakeLists.txt (include()) and, for the composition_interfaces source that
# scripts/install-ros2-tools.sh and the tests build, as -DCMAKE_PROJECT_INCLUDE=<this file>.
function(minelisa_drop_missing_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL minelisa_drop_missing_include_dirs)
