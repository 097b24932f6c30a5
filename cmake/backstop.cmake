# backstop_module(NAME SOURCES a.cc b.cc DEPS other_module Boost::json)
# Defines library target backstop_NAME; DEPS is exactly what the module may use.
function(backstop_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  if(M_SOURCES)
    add_library(backstop_${name} STATIC ${M_SOURCES})
    target_include_directories(backstop_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(backstop_${name} PUBLIC ${M_DEPS})
  else()
    add_library(backstop_${name} INTERFACE)
    target_include_directories(backstop_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(backstop_${name} INTERFACE ${M_DEPS})
  endif()
endfunction()

# backstop_test(NAME SOURCES a_test.cc DEPS backstop_x)
# One GoogleTest executable per module; each TEST becomes a ctest case.
function(backstop_test name)
  if(NOT BACKSTOP_TESTS)
    return()
  endif()
  cmake_parse_arguments(T "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    BACKSTOP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    BACKSTOP_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)
endfunction()
