# Reliability rounds (crash safety under kill -9, load, multi-process) against
# the real devstream binary: one GoogleTest executable, label `reliability`.
# Their length comes from DEVSTREAM_CRASH_ROUNDS / DEVSTREAM_SOAK_SECONDS
# (small by default for `make test`; tests/reliability/soak.sh runs them long).
file(GLOB RELIABILITY_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_test.cpp)
if(RELIABILITY_SOURCES)
  add_executable(reliability_tests ${RELIABILITY_SOURCES}
                                   ${CMAKE_CURRENT_LIST_DIR}/../integration/harness.cpp)
  target_include_directories(reliability_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../integration)
  target_link_libraries(reliability_tests PRIVATE Boost::json ds::sqlite3 GTest::gtest
                                                  GTest::gtest_main)
  target_compile_definitions(reliability_tests PRIVATE DEVSTREAM_BINARY="$<TARGET_FILE:devstream>")
  add_dependencies(reliability_tests devstream)
  gtest_discover_tests(reliability_tests DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS reliability TIMEOUT 600)
endif()
