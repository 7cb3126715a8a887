# Imported targets for the third-party libraries linked from their static
# archives (see the top-level CMakeLists.txt for why):
#   ds::sqlite3, ds::sodium, ds::yaml_cpp  - Debian's lib*.a of the same packages
#   ds::logging                            - spdlog + fmt, header-only
# Each target carries what its archive itself needs at link time.

function(ds_import_archive target archive)
  find_library(DS_ARCHIVE_${archive} NAMES lib${archive}.a REQUIRED)
  add_library(${target} STATIC IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION ${DS_ARCHIVE_${archive}}
                                             INTERFACE_LINK_LIBRARIES "${ARGN}")
endfunction()

ds_import_archive(ds::sqlite3 sqlite3 Threads::Threads m ${CMAKE_DL_LIBS})
ds_import_archive(ds::sodium sodium Threads::Threads)
ds_import_archive(ds::yaml_cpp yaml-cpp)

# spdlog's headers include their implementation unless SPDLOG_COMPILED_LIB is
# defined; Debian's tweakme.h already selects the external fmt.
find_path(DS_SPDLOG_INCLUDE spdlog/spdlog.h REQUIRED)
add_library(ds_logging INTERFACE)
target_compile_definitions(ds_logging INTERFACE SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY=1)
target_link_libraries(ds_logging INTERFACE Threads::Threads)
add_library(ds::logging ALIAS ds_logging)
