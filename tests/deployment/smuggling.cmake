# Request smuggling through nginx (included by tests/CMakeLists.txt).
#
#   smuggling  the real binary behind nginx (the shipped template rendered by
#              deployment/nginx/render.sh, TLS on loopback): CL.TE, TE.CL,
#              duplicate Content-Length and obfuscated Transfer-Encoding, through
#              nginx and directly to the app, are refused or handled as one
#              request, and a hidden second request never reaches the app
#              (tests/deployment/smuggling_test.sh).
#
# Needs nginx, openssl and python3 (deps/debian-test-packages.txt); without
# nginx or openssl the test fails and says what to install. NGINX_EXECUTABLE
# and OPENSSL_EXECUTABLE come from nginx.cmake when it was included first.
find_program(NGINX_EXECUTABLE NAMES nginx PATHS /usr/sbin /usr/local/sbin /usr/local/nginx/sbin)
find_program(OPENSSL_EXECUTABLE NAMES openssl)
if(NGINX_EXECUTABLE AND OPENSSL_EXECUTABLE)
  add_test(NAME smuggling
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/deployment/smuggling_test.sh
                   $<TARGET_FILE:devstream> ${NGINX_EXECUTABLE} ${PROJECT_SOURCE_DIR}
                   ${OPENSSL_EXECUTABLE})
else()
  add_test(NAME smuggling
           COMMAND sh -c "echo 'nginx or openssl not found: install the nginx and openssl packages (deps/debian-test-packages.txt, make test-deps)' >&2; exit 1")
endif()
set_tests_properties(smuggling PROPERTIES LABELS integration TIMEOUT 120)
