# The Docker image and the compose stack (included by tests/CMakeLists.txt).
# None needs a Docker engine:
#
#   docker_runtime_libs  every shared library the devstream binary loads (ldd)
#                        comes from a package of deps/debian-runtime-packages.txt,
#                        which the production image installs, or from their
#                        dependencies (tests/deployment/runtime_libs_test.sh)
#   dockerfile_lint      deployment/docker/Dockerfile passes dockerfile-utils
#                        (tests/node devDependency) without a warning and has the
#                        stages and properties the deployment relies on; COPY
#                        sources exist and survive .dockerignore
#                        (tests/deployment/dockerfile_lint_test.mjs)
#   docker_compose       deployment/docker/docker-compose.prod.yml passes
#                        `docker-compose config` (Debian's 1.29) and has the
#                        services, dependencies, health checks, limits and
#                        volumes of the stack (tests/deployment/compose_test.sh)
#
# They need dpkg/ldd/readelf, docker-compose with python3-yaml
# (deps/debian-test-packages.txt) and node with the npm packages of tests/node
# (make test-deps); without them they fail and say what to install.
add_test(NAME docker_runtime_libs
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/deployment/runtime_libs_test.sh
                 $<TARGET_FILE:devstream> ${PROJECT_SOURCE_DIR})
add_test(NAME docker_compose
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/deployment/compose_test.sh ${PROJECT_SOURCE_DIR})
if(NODE_EXECUTABLE)
  add_test(NAME dockerfile_lint
           COMMAND ${NODE_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/deployment/dockerfile_lint_test.mjs
                   ${PROJECT_SOURCE_DIR})
else()
  add_test(NAME dockerfile_lint
           COMMAND sh -c "echo 'node not found: run make test-deps (installs nodejs and the npm packages of tests/node)' >&2; exit 1")
endif()
set_tests_properties(docker_runtime_libs docker_compose dockerfile_lint
                     PROPERTIES LABELS integration TIMEOUT 120)
