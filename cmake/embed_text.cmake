# Writes a C++ source defining `const std::string& <FUNCTION>()` that returns the
# text of INPUT (run at build time so editing INPUT rebuilds the binary).
# Inputs: INPUT, OUTPUT, FUNCTION (qualified name), HEADER.
file(READ "${INPUT}" text)
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by embed_text.cmake.\n#include \"${HEADER}\"\n\nconst std::string& ${FUNCTION}() {\n  static const std::string text = R\"ds_embed(${text})ds_embed\";\n  return text;\n}\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUTPUT}.tmp" "${OUTPUT}")
