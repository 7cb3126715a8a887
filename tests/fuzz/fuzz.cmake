# libFuzzer targets (tests/fuzz/<name>.cpp). By default (g++ or clang) each is
# linked with replay_main.cpp into fuzz_<name>, and CTest test
# fuzz_replay_<name> (label fuzz) replays its seed corpus and crash
# regressions in tests/fuzz/corpus/<name>/. With DEVSTREAM_FUZZ=ON (clang
# only; tests/fuzz/run_fuzz.sh configures it) they are real libFuzzer
# binaries instead: -fsanitize=fuzzer,address,undefined, no replay tests.
option(DEVSTREAM_FUZZ "Build the fuzz targets as libFuzzer binaries (clang)" OFF)

set(DS_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(DS_FUZZ_TARGETS http_request api_bodies mcp_jsonrpc hook_event fts_query config)

if(DEVSTREAM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "DEVSTREAM_FUZZ needs clang (libFuzzer): CXX=clang++-14")
  endif()
  if(NOT DEVSTREAM_SANITIZE OR NOT CMAKE_CXX_FLAGS MATCHES "fuzzer-no-link")
    message(FATAL_ERROR "DEVSTREAM_FUZZ needs the libraries instrumented too: configure with "
                        "-DDEVSTREAM_SANITIZE=ON -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link "
                        "(tests/fuzz/run_fuzz.sh does)")
  endif()
endif()

add_library(ds_fuzz_world STATIC ${DS_FUZZ_DIR}/fuzz_world.cpp)
target_link_libraries(ds_fuzz_world PUBLIC ds_all)

foreach(name ${DS_FUZZ_TARGETS})
  if(DEVSTREAM_FUZZ)
    add_executable(fuzz_${name} ${DS_FUZZ_DIR}/${name}.cpp)
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzz_${name} ${DS_FUZZ_DIR}/${name}.cpp ${DS_FUZZ_DIR}/replay_main.cpp)
    add_test(NAME fuzz_replay_${name} COMMAND fuzz_${name} ${DS_FUZZ_DIR}/corpus/${name})
    set_tests_properties(fuzz_replay_${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  endif()
  target_link_libraries(fuzz_${name} PRIVATE ds_fuzz_world)
endforeach()
