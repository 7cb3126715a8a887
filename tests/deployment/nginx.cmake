# nginx in front of DevStream (included by tests/CMakeLists.txt).
#
#   nginx_config  the shipped template deployment/nginx/nginx.conf, rendered by
#                 deployment/nginx/render.sh with test certificates, passes
#                 `nginx -t`; render.sh writes the right lines and refuses bad
#                 values and unrendered placeholders (tests/deployment/nginx_config_test.sh)
#   stack_e2e     migrations, 2 API processes, 1 worker and nginx with TLS on
#                 loopback ports, exercised through HTTPS (tests/node/stack_e2e.mjs)
#
# Both need nginx and openssl (deps/debian-test-packages.txt); stack_e2e also
# node and the npm packages of tests/node. Without them the tests fail and say
# what to install.
find_program(NGINX_EXECUTABLE NAMES nginx PATHS /usr/sbin /usr/local/sbin /usr/local/nginx/sbin)
find_program(OPENSSL_EXECUTABLE NAMES openssl)

set(DS_NGINX_MISSING "")
if(NOT NGINX_EXECUTABLE)
  string(APPEND DS_NGINX_MISSING "nginx not found: install the nginx package (deps/debian-test-packages.txt, make test-deps). ")
endif()
if(NOT OPENSSL_EXECUTABLE)
  string(APPEND DS_NGINX_MISSING "openssl not found: install the openssl package (deps/debian-test-packages.txt). ")
endif()

if(DS_NGINX_MISSING STREQUAL "")
  add_test(NAME nginx_config
           COMMAND sh ${PROJECT_SOURCE_DIR}/tests/deployment/nginx_config_test.sh
                   ${NGINX_EXECUTABLE} ${OPENSSL_EXECUTABLE})
else()
  add_test(NAME nginx_config COMMAND sh -c "echo '${DS_NGINX_MISSING}' >&2; exit 1")
endif()

if(NOT NODE_EXECUTABLE)
  add_test(NAME stack_e2e COMMAND sh -c "echo 'node not found: run make test-deps (installs nodejs and the npm packages of tests/node)' >&2; exit 1")
elseif(NOT DS_NGINX_MISSING STREQUAL "")
  add_test(NAME stack_e2e COMMAND sh -c "echo '${DS_NGINX_MISSING}' >&2; exit 1")
else()
  add_test(NAME stack_e2e
           COMMAND ${NODE_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/node/stack_e2e.mjs
                   $<TARGET_FILE:devstream> ${NGINX_EXECUTABLE} ${PROJECT_SOURCE_DIR}
                   ${OPENSSL_EXECUTABLE})
endif()

set_tests_properties(nginx_config PROPERTIES LABELS integration TIMEOUT 60)
# The run takes a few seconds; the timeout leaves room for sanitizer builds
# on a loaded machine (the script stops itself after 150 s).
set_tests_properties(stack_e2e PROPERTIES LABELS integration TIMEOUT 180)
