# Fixes of targets' INTERFACE_INCLUDE_DIRECTORIES for builds against the ROS 2 PyPI wheels.
#
# minelisa_rewrite_include_dirs(<mode> <target>...), modes:
#   DROP_MISSING             drop entries that do not exist on this machine: the wheels
#                            export targets whose include directories point at the machine
#                            they were built on (e.g. /opt/python/...), and CMake refuses
#                            imported targets with missing include paths. A regular ROS
#                            installation has none and is left unchanged.
#   BUILD_ONLY_UNDER_SOURCE  wrap entries under the source tree in $<BUILD_INTERFACE:...>:
#                            a virtual environment inside the tree (pip users' `.venv`) puts
#                            NumPy's include directory there, which CMake refuses to export.
# Generator expressions are kept as they are.
#
# Including this file also drops the missing include directories of every imported
# target at the end of configuring the top directory; that is how the tests and
# scripts/install-ros2-tools.sh use it on composition_interfaces
# (-DCMAKE_PROJECT_INCLUDE=<this file>).
function(minelisa_rewrite_include_dirs mode)
  foreach(_target IN LISTS ARGN)
    get_target_property(_type ${_target} TYPE)
    if(_type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_out "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<")
        list(APPEND _out "${_dir}")
      elseif(mode STREQUAL "DROP_MISSING")
        if(EXISTS "${_dir}")
          list(APPEND _out "${_dir}")
        endif()
      elseif(_dir MATCHES "^${CMAKE_SOURCE_DIR}/")
        list(APPEND _out "$<BUILD_INTERFACE:${_dir}>")
      else()
        list(APPEND _out "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_out}")
  endforeach()
endfunction()

function(minelisa_drop_missing_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  minelisa_rewrite_include_dirs(DROP_MISSING ${_targets})
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL minelisa_drop_missing_include_dirs)
