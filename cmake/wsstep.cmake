# Shared helpers for the component CMakeLists.

# Our own code builds warning-clean; third-party headers come in as SYSTEM.
function(wsstep_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# wsstep_component(NAME name DEPS ... TEST_DEPS ...): one library from every *.cc in the
# current folder that is not a *_test.cc, plus one test executable per *_test.cc there.
# Components glob so that several people can add files to one folder without editing
# its list.
# A folder nested in another (core/store/, plugin/server/) is a component of its own
# with its own CMakeLists.txt; the order between them is in docs/architecture.md.
function(wsstep_component)
  cmake_parse_arguments(ARG "" "NAME" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB _all CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  file(GLOB _tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc)
  set(_srcs ${_all})
  if(_tests)
    list(REMOVE_ITEM _srcs ${_tests})
  endif()
  set(_lib ${ARG_NAME})
  add_library(${_lib} STATIC ${_srcs})
  target_include_directories(${_lib} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${_lib} PUBLIC ${ARG_DEPS})
  wsstep_warnings(${_lib})
  foreach(_t ${_tests})
    get_filename_component(_n ${_t} NAME_WE)
    wsstep_test(${_n} SOURCES ${_t} DEPS ${_lib} ${ARG_TEST_DEPS})
  endforeach()
endfunction()

# wsstep_test(name SOURCES ... DEPS ...): a GoogleTest executable registered with ctest.
# Tests that need the generated test PKI get WSSTEP_TEST_PKI in their environment and
# run after the `test_pki` fixture (tests/pki/make_pki.sh) has produced it.
function(wsstep_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  wsstep_warnings(${name})
  # gtest_discover_tests (CMake 3.25) passes only the first of several ENVIRONMENT
  # entries, so the environment comes from an `env` launcher, which discovery uses both
  # to list and to run the tests.
  set_target_properties(${name} PROPERTIES CROSSCOMPILING_EMULATOR
    "env;WSSTEP_TEST_PKI=${WSSTEP_TEST_PKI_DIR};WSSTEP_SOURCE_DIR=${PROJECT_SOURCE_DIR};WSSTEP_BINARY_DIR=${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60
    PROPERTIES
      FIXTURES_REQUIRED test_pki
      TIMEOUT 600)
endfunction()
